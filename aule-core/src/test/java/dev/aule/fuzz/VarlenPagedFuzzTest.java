package dev.aule.fuzz;

import dev.aule.Attention;
import dev.aule.AttentionOptions;
import dev.aule.AttentionResult;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.fuzz.Contract.Breach;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.PagedKv;
import dev.aule.testing.Layout;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Fuzzes {@code forwardVarlenPaged} (packed rows against block tables: decode rows and prefill chunks in one call),
 * now and then with sink logits, on cpu and reference and through {@link Attention}, with broken offsets, tables and
 * lengths: each call matches the reference on every sequence, or is refused naming the argument with nothing
 * written.
 */
class VarlenPagedFuzzTest {

    @Test
    void pagedPackedAttentionMatchesTheReferenceOrRejects() {
        Fuzz.check("forwardVarlenPaged", 400, VarlenPagedFuzzTest::varlenPagedCase);
    }

    static void varlenPagedCase(Choices c) {
        boolean facade = c.note("facade", c.oneIn(3));
        AttentionBackend backend = Backends.get(c.note("backend", c.pick("cpu", "reference")));
        int n = c.note("sequences", c.between(1, 4));
        int kvHeads = c.note("Hkv", c.pickInt(1, 2));
        int hq = kvHeads * c.note("group", c.pickInt(1, 2, 4));
        int numBlocks = c.note("numBlocks", c.between(1, 10));
        int blockSize = c.note("blockSize", c.pickInt(1, 2, 4, 16, 5));
        int d = c.note("D", c.pickInt(Draws.DIMS));
        int dv = c.note("Dv", c.oneIn(4) ? c.pickInt(Draws.DIMS) : d);
        DType cacheType = c.note("cache", Draws.dtype(c));
        Draws.Values values = c.note("values", c.pick(Draws.Values.values()));
        int[][] tables = new int[n][];
        int[] lens = new int[n];
        int[] cu = new int[n + 1];
        for (int s = 0; s < n; s++) {
            lens[s] = c.between(0, Math.min(numBlocks * blockSize, 40));
            int blocks = Math.ceilDiv(lens[s], blockSize) + c.below(3);
            tables[s] = new int[blocks];
            for (int i = 0; i < blocks; i++) {
                tables[s][i] = c.below(numBlocks);
            }
            int rows = c.oneIn(3) ? 1 : c.between(0, Math.max(1, Math.min(lens[s], 12)));
            cu[s + 1] = cu[s] + rows;
        }
        if (cu[n] == 0) {
            cu[n] = 1; // q holds at least one row
        }
        c.note("contextLens", Arrays.toString(lens));
        c.note("cuSeqlensQ", Arrays.toString(cu));
        int breach = c.oneIn(2) ? c.note("break", c.below(9)) : 0;
        SplittableRandom rnd = new SplittableRandom(c.seed());
        int longest = Arrays.stream(lens).max().orElse(1);
        AttentionOptions options = Draws.options(c, rnd, n, hq, cu[n], Math.max(1, longest), false, false);
        if (c.oneIn(3)) {
            float[] sinks = new float[hq];
            for (int h = 0; h < hq; h++) {
                sinks[h] = (float) (rnd.nextDouble() * 8 - 4);
            }
            options = options.toBuilder().sinks(sinks).build();
        }
        c.note("options", options);
        Tensor kPool = pool(cacheType, numBlocks, kvHeads, blockSize, d, rnd);
        Tensor vPool = pool(cacheType, numBlocks, kvHeads, blockSize, dv, rnd);
        Draws.poison(values, rnd.nextBoolean() ? kPool : vPool, rnd);
        Tensor q = Draws.tensor(Layout.BHSD, DType.F32, 1, hq, cu[n], d, null, rnd);
        Tensor out = Tensor.allocate(DType.F32, 1, hq, cu[n], dv);
        out.fill(Float.NaN);
        Tensor lse = Tensor.allocate(DType.F32, 1, hq, cu[n], 1);
        int victim = rnd.nextInt(n);
        int[][] brokenTables = Arrays.stream(tables).map(int[]::clone).toArray(int[][]::new);
        int[] brokenLens = lens.clone();
        int[] brokenCu = cu.clone();
        Breach why = Breach.none();
        int reach = Math.ceilDiv(lens[victim], blockSize);
        switch (breach) {
            case 1, 2 -> {
                if (reach > 0) {
                    int bad = breach == 1 ? numBlocks : -1;
                    brokenTables[victim][rnd.nextInt(reach)] = bad;
                    why = Breach.of("block id " + bad, "blockTables");
                }
            }
            case 3 -> {
                brokenLens[victim] = tables[victim].length * blockSize + 1;
                why = Breach.of("a context longer than its table", "contextLens");
            }
            case 4 -> {
                brokenCu[n] = cu[n] + 1;
                why = Breach.of("offsets past q's rows", "cuSeqlensQ");
            }
            case 5 -> {
                if (n >= 2 && cu[1] > 0) {
                    brokenCu[1] = cu[n] + 1;
                    why = Breach.of("decreasing offsets", "cuSeqlensQ");
                }
            }
            case 6 -> {
                brokenTables = Arrays.copyOf(brokenTables, n + 1);
                brokenTables[n] = new int[0];
                why = Breach.of("one table too many", "blockTables", "contextLens");
            }
            case 7 -> {
                brokenTables[victim] = null;
                why = Breach.of("a null table", "blockTables");
            }
            case 8 -> {
                brokenCu = Arrays.copyOf(cu, n);
                why = Breach.of("one offset too few", "cuSeqlensQ", "blockTables", "contextLens");
            }
            default -> {}
        }
        Tensor[] got = {out, lse};
        int[][] fTables = brokenTables;
        int[] fLens = brokenLens;
        int[] fCu = brokenCu;
        AttentionOptions fOptions = options;
        Contract.check(
                why,
                List.of(out, lse, kPool, vPool),
                () -> {
                    if (facade) {
                        AttentionResult r =
                                Attention.forwardVarlenPaged(q, kPool, vPool, fCu, fTables, fLens, fOptions);
                        got[0] = r.out();
                        got[1] = r.lse();
                    } else {
                        backend.forwardVarlenPaged(
                                q, new PagedKv(kPool, vPool, fTables, fLens), fCu, got[0], got[1], fOptions);
                    }
                },
                () -> {
                    for (int s = 0; s < n; s++) {
                        int rows = cu[s + 1] - cu[s];
                        if (rows == 0) {
                            continue;
                        }
                        Tensor keys = lens[s] == 0 ? null : gather(kPool, tables[s], lens[s], blockSize);
                        Tensor vals = lens[s] == 0 ? null : gather(vPool, tables[s], lens[s], blockSize);
                        Sequences.assertRows(
                                "sequence " + s,
                                got[0],
                                got[1],
                                0,
                                cu[s],
                                q.sequence(0, cu[s], rows),
                                keys,
                                vals,
                                fOptions);
                    }
                });
    }

    private static Tensor pool(DType dtype, int n, int h, int bs, int dim, SplittableRandom rnd) {
        int count = n * h * bs * dim;
        java.lang.foreign.MemorySegment memory = dtype == DType.F32
                ? java.lang.foreign.MemorySegment.ofArray(new float[count])
                : java.lang.foreign.MemorySegment.ofArray(new short[count]);
        Tensor t = Tensor.of(
                memory, dtype, new long[] {n, h, bs, dim}, new long[] {(long) h * bs * dim, (long) bs * dim, dim, 1});
        dev.aule.testing.Tensors.fillRandom(rnd, t);
        return t;
    }

    private static Tensor gather(Tensor pool, int[] table, int n, int blockSize) {
        int dim = pool.headDim();
        float[] data = new float[pool.heads() * n * dim];
        for (int h = 0; h < pool.heads(); h++) {
            for (int j = 0; j < n; j++) {
                pool.readRow(table[j / blockSize], h, j % blockSize, data, (h * n + j) * dim);
            }
        }
        return Tensor.of(data, 1, pool.heads(), n, dim);
    }
}
