package dev.aule.fuzz;

import dev.aule.Attention;
import dev.aule.AttentionOptions;
import dev.aule.AttentionResult;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.fuzz.Contract.Breach;
import dev.aule.mask.MaskMod;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.PackedSequences;
import dev.aule.spi.PagedKv;
import dev.aule.testing.Layout;
import dev.aule.testing.UnreachableMemory;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Fuzzes the serving entry points: {@code forwardCached} (contiguous caches with a length per sequence),
 * {@code forwardPaged} (block tables, head-major and vLLM layouts) and {@code forwardVarlen} and {@code forwardVarlenInto} (packed
 * sequences), on cpu and reference and through {@link Attention}, with broken lengths, tables and offsets
 * (out of range, negative, near {@link Integer#MAX_VALUE}, non-monotonic), aliased and unreachable memory.
 */
class ServingFuzzTest {
    private static final int[] SMALL = {1, 2, 3, 5, 8, 16, 17};

    @Test
    void cachedAttentionMatchesTheReferenceOrRejects() {
        Fuzz.check("forwardCached", 500, ServingFuzzTest::cachedCase);
    }

    @Test
    void pagedAttentionMatchesTheReferenceOrRejects() {
        Fuzz.check("forwardPaged", 500, ServingFuzzTest::pagedCase);
    }

    @Test
    void packedAttentionMatchesTheReferenceOrRejects() {
        Fuzz.check("forwardVarlen", 500, ServingFuzzTest::varlenCase);
    }

    static void cachedCase(Choices c) {
        boolean facade = c.note("facade", c.oneIn(3));
        String name = c.note("backend", c.pick("cpu", "reference"));
        AttentionBackend backend = Backends.get(name);
        int batch = c.note("B", c.between(1, 3));
        int kvHeads = c.note("Hkv", c.pickInt(1, 2));
        int group = c.note("group", c.pickInt(1, 2, 4));
        int hq = kvHeads * group;
        int capacity = c.note("capacity", c.pickInt(SMALL));
        int sq = c.note("Sq", c.pickInt(1, 2, 3, 5));
        int d = c.note("D", c.pickInt(Draws.DIMS));
        int dv = c.note("Dv", c.oneIn(4) ? c.pickInt(Draws.DIMS) : d);
        DType cacheType = c.note("cache", Draws.dtype(c));
        DType qType = c.note("q", Draws.dtype(c));
        Layout layout = c.note("layout", Draws.layout(c));
        Draws.Values values = c.note("values", c.pick(Draws.Values.values()));
        int[] lens = new int[batch];
        for (int b = 0; b < batch; b++) {
            lens[b] = c.between(0, capacity);
        }
        c.note("cacheLens", Arrays.toString(lens));
        int breach = c.oneIn(2) ? c.note("break", c.below(9)) : 0;
        SplittableRandom rnd = new SplittableRandom(c.seed());
        AttentionOptions options = Draws.options(c, rnd, batch, hq, sq, capacity, false, false);
        try (Arena arena = Arena.ofConfined()) {
            Tensor q = Draws.tensor(Layout.BHSD, qType, batch, hq, sq, d, arena, rnd);
            Tensor kCache = Draws.tensor(layout, cacheType, batch, kvHeads, capacity, d, arena, rnd);
            Tensor vCache = Draws.tensor(layout, cacheType, batch, kvHeads, capacity, dv, arena, rnd);
            Draws.poison(values, rnd.nextBoolean() ? kCache : vCache, rnd);
            Tensor out = Draws.poisoned(Layout.BHSD, qType, batch, hq, sq, dv, arena, rnd);
            Tensor lse = Tensor.allocate(DType.F32, batch, hq, sq, 1);
            int[] cacheLens = lens.clone();
            int victim = rnd.nextInt(batch);
            Breach why = Breach.none();
            switch (breach) {
                case 1 -> {
                    cacheLens[victim] = capacity + 1;
                    why = Breach.of("a length past the capacity", "cacheLens");
                }
                case 2 -> {
                    cacheLens[victim] = -1;
                    why = Breach.of("a negative length", "cacheLens");
                }
                case 3 -> {
                    cacheLens[victim] = rnd.nextBoolean() ? Integer.MAX_VALUE : Integer.MIN_VALUE;
                    why = Breach.of("a length of 2^31-1 or -2^31", "cacheLens");
                }
                case 4 -> {
                    cacheLens = Arrays.copyOf(cacheLens, batch + 1);
                    why = Breach.of("a length too many", "cacheLens");
                }
                case 5 -> {
                    kCache = UnreachableMemory.closed(kCache);
                    why = Breach.of("kCache in a closed arena", "kCache");
                }
                case 6 -> {
                    Tensor alias = Draws.over(vCache.memory(), qType, Draws.shape(batch, hq, sq, dv));
                    if (alias != null && !facade) {
                        out = alias;
                        why = Breach.of("out over vCache", "out", "vCache");
                    }
                }
                case 7 -> {
                    options = options.toBuilder().maskMod(MaskMod.causal()).build();
                    why = Breach.of("a MaskMod (serving has none)", "options");
                }
                case 8 -> {
                    kCache = Draws.tensor(Layout.BHSD, cacheType, batch, kvHeads, capacity + 1, d, arena, rnd);
                    why = Breach.of("kCache with a capacity unlike vCache's", "v", "k", "vCache", "kCache");
                }
                default -> {}
            }
            c.note("options", options);
            Tensor fq = q;
            Tensor fk = kCache;
            Tensor fv = vCache;
            Tensor[] got = {out, lse};
            int[] fLens = cacheLens;
            AttentionOptions fo = options;
            Contract.check(
                    why,
                    List.of(out, lse, kCache, vCache),
                    () -> {
                        if (facade) {
                            AttentionResult r = Attention.forwardCached(fq, fk, fv, fLens, fo);
                            got[0] = r.out();
                            got[1] = r.lse();
                        } else {
                            backend.forwardCached(fq, fk, fv, fLens, got[0], got[1], fo);
                        }
                    },
                    () -> {
                        for (int b = 0; b < batch; b++) {
                            int n = fLens[b];
                            Sequences.assertRows(
                                    "sequence " + b,
                                    got[0],
                                    got[1],
                                    b,
                                    0,
                                    fq.sequence(b, 0, sq),
                                    n == 0 ? null : Sequences.gather(fk, b, Sequences.range(0, n)),
                                    n == 0 ? null : Sequences.gather(fv, b, Sequences.range(0, n)),
                                    fo);
                        }
                    });
        }
    }

    static void pagedCase(Choices c) {
        boolean facade = c.note("facade", c.oneIn(3));
        String name = c.note("backend", c.pick("cpu", "reference"));
        AttentionBackend backend = Backends.get(name);
        int batch = c.note("B", c.between(1, 3));
        int kvHeads = c.note("Hkv", c.pickInt(1, 2));
        int group = c.note("group", c.pickInt(1, 2, 4));
        int hq = kvHeads * group;
        int numBlocks = c.note("numBlocks", c.between(1, 10));
        int blockSize = c.note("blockSize", c.pickInt(1, 2, 4, 16, 5));
        int sq = c.note("Sq", c.pickInt(1, 2, 3));
        int d = c.note("D", c.pickInt(Draws.DIMS));
        int dv = c.note("Dv", c.oneIn(4) ? c.pickInt(Draws.DIMS) : d);
        DType cacheType = c.note("cache", Draws.dtype(c));
        boolean vllm = c.note("vllmLayout", c.oneIn(2));
        Draws.Values values = c.note("values", c.pick(Draws.Values.values()));
        int[][] tables = new int[batch][];
        int[] lens = new int[batch];
        for (int b = 0; b < batch; b++) {
            lens[b] = c.between(0, Math.min(numBlocks * blockSize, 40));
            int blocks = Math.ceilDiv(lens[b], blockSize) + c.below(3);
            tables[b] = new int[blocks];
            for (int i = 0; i < blocks; i++) {
                tables[b][i] = c.below(numBlocks); // repeats allowed: sequences share blocks
            }
        }
        c.note("contextLens", Arrays.toString(lens));
        c.note("blockTables", Arrays.deepToString(tables));
        int breach = c.oneIn(2) ? c.note("break", c.below(10)) : 0;
        SplittableRandom rnd = new SplittableRandom(c.seed());
        int longest = Arrays.stream(lens).max().orElse(1);
        AttentionOptions options = Draws.options(c, rnd, batch, hq, sq, Math.max(1, longest), false, false);
        c.note("options", options);
        Tensor kPool = pool(cacheType, numBlocks, kvHeads, blockSize, d, vllm, rnd);
        Tensor vPool = pool(cacheType, numBlocks, kvHeads, blockSize, dv, vllm, rnd);
        Draws.poison(values, rnd.nextBoolean() ? kPool : vPool, rnd);
        Tensor q = Draws.tensor(Layout.BHSD, DType.F32, batch, hq, sq, d, null, rnd);
        Tensor out = Tensor.allocate(DType.F32, batch, hq, sq, dv);
        out.fill(Float.NaN);
        Tensor lse = Tensor.allocate(DType.F32, batch, hq, sq, 1);
        int victim = rnd.nextInt(batch);
        int[][] brokenTables = Arrays.stream(tables).map(int[]::clone).toArray(int[][]::new);
        int[] brokenLens = lens.clone();
        Breach why = Breach.none();
        int reach = Math.ceilDiv(lens[victim], blockSize);
        switch (breach) {
            case 1, 2, 3 -> {
                if (reach > 0) {
                    int bad = breach == 1 ? numBlocks : breach == 2 ? -1 : Integer.MIN_VALUE;
                    brokenTables[victim][rnd.nextInt(reach)] = bad;
                    why = Breach.of("block id " + bad, "blockTables");
                }
            }
            case 4 -> {
                brokenLens[victim] = tables[victim].length * blockSize + 1;
                why = Breach.of("a context longer than its table", "contextLens");
            }
            case 5 -> {
                brokenLens[victim] = rnd.nextBoolean() ? -1 : Integer.MAX_VALUE;
                why = Breach.of("a context length of -1 or 2^31-1", "contextLens");
            }
            case 6 -> {
                brokenTables = Arrays.copyOf(brokenTables, batch + 1);
                brokenTables[batch] = new int[0];
                why = Breach.of("one table too many", "blockTables", "contextLens");
            }
            case 7 -> {
                brokenTables[victim] = null;
                why = Breach.of("a null table", "blockTables");
            }
            case 8 -> {
                if (tables[victim].length > reach) {
                    // entries past the context are never read: any value is legal there
                    brokenTables[victim][reach] = Integer.MAX_VALUE;
                }
            }
            case 9 -> {
                kPool = UnreachableMemory.closed(kPool);
                why = Breach.of("kCache in a closed arena", "kCache");
            }
            default -> {}
        }
        Tensor fk = kPool;
        Tensor fv = vPool;
        Tensor[] got = {out, lse};
        int[][] fTables = brokenTables;
        int[] fLens = brokenLens;
        Contract.check(
                why,
                List.of(out, lse, kPool, vPool),
                () -> {
                    if (facade) {
                        AttentionResult r = Attention.forwardPaged(q, fk, fv, fTables, fLens, options);
                        got[0] = r.out();
                        got[1] = r.lse();
                    } else {
                        backend.forwardPaged(q, new PagedKv(fk, fv, fTables, fLens), got[0], got[1], options);
                    }
                },
                () -> {
                    for (int b = 0; b < batch; b++) {
                        int n = lens[b];
                        Tensor keys = null;
                        Tensor vals = null;
                        if (n > 0) {
                            keys = Sequences.gatherBlocks(fk, tables[b], n, blockSize);
                            vals = Sequences.gatherBlocks(fv, tables[b], n, blockSize);
                        }
                        Sequences.assertRows(
                                "sequence " + b, got[0], got[1], b, 0, q.sequence(b, 0, sq), keys, vals, options);
                    }
                });
    }

    /** {@code [numBlocks, Hkv, blockSize, dim]}: contiguous, or vLLM's {@code [numBlocks, blockSize, Hkv, dim]}. */
    private static Tensor pool(DType dtype, int n, int h, int bs, int dim, boolean vllm, SplittableRandom rnd) {
        long[] strides = vllm
                ? new long[] {(long) bs * h * dim, dim, (long) h * dim, 1}
                : new long[] {(long) h * bs * dim, (long) bs * dim, dim, 1};
        int count = n * h * bs * dim;
        java.lang.foreign.MemorySegment memory = dtype == DType.F32
                ? java.lang.foreign.MemorySegment.ofArray(new float[count])
                : java.lang.foreign.MemorySegment.ofArray(new short[count]);
        Tensor t = Tensor.of(memory, dtype, new long[] {n, h, bs, dim}, strides);
        dev.aule.testing.Tensors.fillRandom(rnd, t);
        return t;
    }

    static void varlenCase(Choices c) {
        boolean facade = c.note("facade", c.oneIn(3));
        // The facade either allocates its result or writes into the caller's out and lse.
        boolean into = facade && c.note("into", c.oneIn(2));
        String name = c.note("backend", c.pick("cpu", "reference"));
        AttentionBackend backend = Backends.get(name);
        int kvHeads = c.note("Hkv", c.pickInt(1, 2));
        int group = c.note("group", c.pickInt(1, 2, 4));
        int hq = kvHeads * group;
        int d = c.note("D", c.pickInt(Draws.DIMS));
        int dv = c.note("Dv", c.oneIn(4) ? c.pickInt(Draws.DIMS) : d);
        DType dtype = c.note("dtype", Draws.dtype(c));
        Layout layout = c.note("layout", Draws.layout(c));
        Draws.Values values = c.note("values", c.pick(Draws.Values.values()));
        int n = c.note("sequences", c.between(1, 4));
        int[] cuQ = new int[n + 1];
        int[] cuK = new int[n + 1];
        for (int s = 0; s < n; s++) {
            cuQ[s + 1] = cuQ[s] + (s == 0 ? 1 : 0) + c.between(0, 16);
            cuK[s + 1] = cuK[s] + (s == 0 ? 1 : 0) + c.between(0, 20);
        }
        c.note("cuSeqlensQ", Arrays.toString(cuQ));
        c.note("cuSeqlensK", Arrays.toString(cuK));
        int breach = c.oneIn(2) ? c.note("break", c.below(9)) : 0;
        SplittableRandom rnd = new SplittableRandom(c.seed());
        int totalQ = cuQ[n];
        int totalK = cuK[n];
        AttentionOptions options = Draws.options(c, rnd, 1, hq, totalQ, totalK, false, false);
        c.note("options", options);
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Draws.tensor(layout, dtype, 1, hq, totalQ, d, arena, rnd);
            Tensor k = Draws.tensor(layout, dtype, 1, kvHeads, totalK, d, arena, rnd);
            Tensor v = Draws.tensor(layout, dtype, 1, kvHeads, totalK, dv, arena, rnd);
            Draws.poison(values, rnd.nextBoolean() ? k : v, rnd);
            Tensor out = Tensor.allocate(DType.F32, 1, hq, totalQ, dv);
            out.fill(Float.NaN);
            Tensor lse = Tensor.allocate(DType.F32, 1, hq, totalQ, 1);
            int[] bq = cuQ.clone();
            int[] bk = cuK.clone();
            Breach why = Breach.none();
            switch (breach) {
                case 1 -> {
                    if (n >= 2 && bq[1] < bq[2]) {
                        bq[1] = bq[2] + 1; // decreasing after it
                        why = Breach.of("non-monotonic query offsets", "cuSeqlensQ");
                    }
                }
                case 2 -> {
                    bk[0] = 1;
                    why = Breach.of("key offsets not starting at 0", "cuSeqlensK");
                }
                case 3 -> {
                    bq[n] = totalQ + 1;
                    why = Breach.of("query offsets ending past the rows", "cuSeqlensQ");
                }
                case 4 -> {
                    bk = Arrays.copyOf(bk, n);
                    why = Breach.of("one key offset too few", "cuSeqlensK", "cuSeqlensQ");
                }
                case 5 -> {
                    bk[rnd.nextInt(n + 1)] = rnd.nextBoolean() ? Integer.MAX_VALUE : Integer.MIN_VALUE;
                    why = Breach.of("a key offset of 2^31-1 or -2^31", "cuSeqlensK");
                }
                case 6 -> {
                    bq = new int[] {0};
                    bk = new int[] {0};
                    why = Breach.of("no sequence", "cuSeqlensQ", "cuSeqlensK");
                }
                case 7 -> {
                    q = Draws.tensor(Layout.BHSD, dtype, 2, hq, totalQ, d, arena, rnd);
                    why = Breach.of("a batch of 2", "q");
                }
                case 8 -> {
                    Tensor alias = Draws.over(k.memory(), DType.F32, Draws.shape(1, hq, totalQ, dv));
                    if (alias != null && (!facade || into) && Contract.readable(k)) {
                        out = alias;
                        why = Breach.of("out over k", "out", "k");
                    }
                }
                default -> {}
            }
            Tensor fq = q;
            Tensor[] got = {out, lse};
            int[] fq2 = bq;
            int[] fk2 = bk;
            Contract.check(
                    why,
                    List.of(out, lse),
                    () -> {
                        if (into) {
                            Attention.forwardVarlenInto(fq, k, v, fq2, fk2, got[0], got[1], options);
                        } else if (facade) {
                            AttentionResult r = Attention.forwardVarlen(fq, k, v, fq2, fk2, options);
                            got[0] = r.out();
                            got[1] = r.lse();
                        } else {
                            backend.forwardVarlen(fq, k, v, new PackedSequences(fq2, fk2), got[0], got[1], options);
                        }
                    },
                    () -> {
                        for (int s = 0; s < n; s++) {
                            int rows = cuQ[s + 1] - cuQ[s];
                            int keys = cuK[s + 1] - cuK[s];
                            if (rows == 0) {
                                continue;
                            }
                            Sequences.assertRows(
                                    "sequence " + s,
                                    got[0],
                                    got[1],
                                    0,
                                    cuQ[s],
                                    Sequences.gather(fq, 0, Sequences.range(cuQ[s], rows)),
                                    keys == 0 ? null : Sequences.gather(k, 0, Sequences.range(cuK[s], keys)),
                                    keys == 0 ? null : Sequences.gather(v, 0, Sequences.range(cuK[s], keys)),
                                    options);
                        }
                    });
        }
    }
}
