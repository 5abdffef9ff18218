package dev.aule.serving;

import dev.aule.Attention;
import dev.aule.AttentionOptions;
import dev.aule.AttentionResult;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.PagedKv;
import dev.aule.testing.ForwardCase;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The vLLM-layout entry point: caches {@code [numBlocks, blockSize, Hkv, D]} in memory, random block
 * tables (blocks in any order, shared between sequences), lengths from 0 to the table's reach.
 */
class ForwardPagedTest {

    /**
     * A cache of random values in the vLLM layout ({@code [numBlocks, blockSize, Hkv, dim]} in memory), or
     * block-major ({@code [numBlocks, Hkv, blockSize, dim]}), where a head's blocks never follow each other
     * and runs of adjacent blocks cannot be read as one.
     */
    private static Tensor cache(
            SplittableRandom rnd, DType dtype, boolean blockMajor, int numBlocks, int blockSize, int kvHeads, int dim) {
        long[] shape = {numBlocks, kvHeads, blockSize, dim};
        long[] strides = blockMajor
                ? new long[] {(long) kvHeads * blockSize * dim, (long) blockSize * dim, dim, 1}
                : new long[] {(long) blockSize * kvHeads * dim, dim, (long) kvHeads * dim, 1};
        int elements = Math.toIntExact((long) numBlocks * blockSize * kvHeads * dim);
        MemorySegment memory = dtype == DType.F32
                ? MemorySegment.ofArray(new float[elements])
                : MemorySegment.ofArray(new short[elements]);
        Tensor t = Tensor.of(memory, dtype, shape, strides);
        Tensors.fillRandom(rnd, t);
        return t;
    }

    /** Rows {@code [0, len)} of one sequence gathered through its table, as a contiguous F32 tensor. */
    private static Tensor gather(Tensor cache, int[] table, int len) {
        if (len == 0) {
            return null;
        }
        Tensor t = Tensor.allocate(DType.F32, 1, cache.heads(), len, cache.headDim());
        float[] row = new float[cache.headDim()];
        for (int h = 0; h < cache.heads(); h++) {
            for (int j = 0; j < len; j++) {
                cache.readRow(table[j / cache.seqLen()], h, j % cache.seqLen(), row, 0);
                t.writeRow(0, h, j, row, 0);
            }
        }
        return t;
    }

    @Test
    void pagedAttentionEqualsTheForwardOnGatheredKeys() {
        for (long seed = 1; seed <= 30; seed++) {
            SplittableRandom rnd = new SplittableRandom(seed);
            int blockSize = new int[] {1, 5, 16, 32}[rnd.nextInt(4)];
            int kvHeads = 1 + rnd.nextInt(3);
            int group = new int[] {1, 2, 4, 8}[rnd.nextInt(4)];
            int d = new int[] {8, 32, 64, 80, 128}[rnd.nextInt(5)];
            int dv = rnd.nextInt(4) == 0 ? 16 : d;
            DType kvType = new DType[] {DType.F32, DType.F16, DType.BF16}[rnd.nextInt(3)];
            int numBlocks = 4 + rnd.nextInt(30);
            int batch = 1 + rnd.nextInt(4);
            int maxBlocks = 1 + rnd.nextInt(seed % 5 == 0 ? 160 / blockSize + 1 : 8);
            int queries = rnd.nextInt(3) == 0 ? 1 + rnd.nextInt(20) : 1;
            boolean blockMajor = rnd.nextInt(3) == 0;
            Tensor kCache = cache(rnd, kvType, blockMajor, numBlocks, blockSize, kvHeads, d);
            Tensor vCache = cache(rnd, kvType, blockMajor, numBlocks, blockSize, kvHeads, dv);
            int[][] tables = new int[batch][maxBlocks];
            int[] lens = new int[batch];
            for (int b = 0; b < batch; b++) {
                for (int i = 0; i < maxBlocks; i++) {
                    tables[b][i] = rnd.nextInt(numBlocks); // any order, repeats and sharing allowed
                }
                lens[b] = rnd.nextInt(5) == 0 ? 0 : rnd.nextInt(maxBlocks * blockSize + 1);
                if (lens[b] < maxBlocks * blockSize && rnd.nextBoolean()) {
                    tables[b][maxBlocks - 1] = -1; // past the context: never read, so any value passes
                    lens[b] = Math.min(lens[b], (maxBlocks - 1) * blockSize);
                }
            }
            Tensor q = Tensors.random(rnd, DType.F32, batch, kvHeads * group, queries, d);
            AttentionOptions options = ForwardCase.randomOptions(rnd, kvHeads * group, maxBlocks * blockSize);
            for (AttentionBackend backend : new AttentionBackend[] {Backends.get("cpu"), Backends.get("reference")}) {
                Tensor out = Oracle.poisoned(DType.F32, batch, q.heads(), queries, dv);
                Tensor lse = Oracle.poisoned(DType.F32, batch, q.heads(), queries, 1);
                backend.forwardPaged(q, new PagedKv(kCache, vCache, tables, lens), out, lse, options);
                for (int b = 0; b < batch; b++) {
                    Tensor k = gather(kCache, tables[b], lens[b]);
                    Tensor v = gather(vCache, tables[b], lens[b]);
                    String where = backend.name() + " seed " + seed + " sequence " + b + " len " + lens[b]
                            + " blockSize " + blockSize + " " + kvType
                            + (blockMajor ? " block-major " : " vLLM layout ") + options;
                    Oracle.assertRowsMatch(out, lse, q, b, 0, queries, k, v, dv, options, where);
                }
            }
        }
    }

    @Test
    void longDecodeSplitsTheContextAcrossPagesAndMergesExactly() {
        SplittableRandom rnd = new SplittableRandom(77);
        int blockSize = 16;
        int numBlocks = 260;
        Tensor kCache = cache(rnd, DType.F32, false, numBlocks, blockSize, 1, 64);
        Tensor vCache = cache(rnd, DType.F32, false, numBlocks, blockSize, 1, 64);
        int[][] tables = new int[2][250];
        for (int i = 0; i < 250; i++) {
            tables[0][i] = (i * 37 + 11) % numBlocks; // scattered pages: one copy per page
            tables[1][i] = (i + 3 * (i / 40) + 30) % numBlocks; // runs of 40 adjacent blocks: one copy per run
        }
        int[] lens = {3999, 2501};
        Tensor q = Tensors.random(rnd, DType.F32, 2, 4, 1, 64);
        AttentionOptions[] all = {
            AttentionOptions.builder().causal(true).build(),
            AttentionOptions.builder()
                    .causal(true)
                    .window(1500, -1)
                    .softcap(20f)
                    .build()
        };
        for (AttentionOptions options : all) {
            AttentionResult r = Attention.forwardPaged(q, kCache, vCache, tables, lens, options);
            for (int b = 0; b < 2; b++) {
                Tensor k = gather(kCache, tables[b], lens[b]);
                Tensor v = gather(vCache, tables[b], lens[b]);
                Oracle.assertRowsMatch(
                        r.out(), r.lse(), q, b, 0, 1, k, v, 64, options, "sequence " + b + " " + options);
            }
        }
    }

    @Test
    void corruptedTablesAndLengthsAreRejectedBeforeAnyRead() {
        SplittableRandom rnd = new SplittableRandom(5);
        Tensor kCache = cache(rnd, DType.F32, false, 6, 4, 2, 8);
        Tensor vCache = cache(rnd, DType.F32, false, 6, 4, 2, 8);
        Tensor q = Tensors.random(rnd, DType.F32, 2, 4, 1, 8);
        int[][] good = {{0, 1, 2}, {5, 4, 3}};
        record Bad(String argument, int[][] tables, int[] lens, Tensor q) {}
        Bad[] bad = {
            new Bad("blockTables[1][0]", new int[][] {{0, 1, 2}, {6, 4, 3}}, new int[] {12, 12}, q),
            new Bad("blockTables[0][2]", new int[][] {{0, 1, -1}, {5, 4, 3}}, new int[] {9, 12}, q),
            new Bad("contextLens[0]", good, new int[] {13, 1}, q),
            new Bad("contextLens[1]", good, new int[] {1, -1}, q),
            new Bad("blockTables, contextLens", new int[][] {{0, 1, 2}}, new int[] {1, 1}, q),
            new Bad("blockTables, contextLens", good, new int[] {1}, q),
            new Bad("blockTables[1]", new int[][] {{0, 1, 2}, null}, new int[] {1, 1}, q),
            new Bad("blockTables, contextLens", good, new int[] {1, 1}, Tensors.random(rnd, DType.F32, 3, 4, 1, 8)),
            new Bad("q, k", good, new int[] {1, 1}, Tensors.random(rnd, DType.F32, 2, 3, 1, 8)),
        };
        for (AttentionBackend backend : new AttentionBackend[] {Backends.get("cpu"), Backends.get("reference")}) {
            for (Bad c : bad) {
                Tensor out = Oracle.poisoned(DType.F32, c.q().batch(), c.q().heads(), 1, 8);
                IllegalArgumentException e = assertThrows(
                        IllegalArgumentException.class,
                        () -> backend.forwardPaged(
                                c.q(),
                                new PagedKv(kCache, vCache, c.tables(), c.lens()),
                                out,
                                null,
                                AttentionOptions.defaults()));
                assertTrue(e.getMessage().startsWith(c.argument()), c.argument() + " expected: " + e.getMessage());
                assertTrue(Oracle.allNaN(out), "nothing written: " + e.getMessage());
            }
            Tensor wrongV = cache(rnd, DType.F32, false, 5, 4, 2, 8);
            Tensor out = Oracle.poisoned(DType.F32, 2, 4, 1, 8);
            IllegalArgumentException e = assertThrows(
                    IllegalArgumentException.class,
                    () -> backend.forwardPaged(
                            q,
                            new PagedKv(kCache, wrongV, good, new int[] {1, 1}),
                            out,
                            null,
                            AttentionOptions.defaults()));
            assertTrue(e.getMessage().startsWith("vCache"), e.getMessage());
            assertThrows(
                    IllegalArgumentException.class,
                    () -> backend.forwardPaged(
                            q.sequence(0, 0, 1),
                            new PagedKv(kCache, vCache, new int[][] {{0}}, new int[] {1}),
                            Tensor.of(kCache.memory(), DType.F32, new long[] {1, 4, 1, 8}, new long[] {32, 8, 8, 1}),
                            null,
                            AttentionOptions.defaults()),
                    "out overlapping the cache");
        }
    }

    /**
     * A context near Integer.MAX_VALUE (a zero-stride pool lets a block hold 2^30 tokens): the count of
     * blocks it reaches must not wrap around and skip the check of their ids.
     */
    @Test
    void aContextNearIntegerMaxStillHasEveryBlockIdChecked() {
        int blockSize = 1 << 30;
        Tensor kCache =
                Tensor.of(MemorySegment.ofArray(new float[16]), DType.F32, new long[] {1, 2, blockSize, 8}, new long[] {
                    16, 8, 0, 1
                });
        Tensor vCache =
                Tensor.of(MemorySegment.ofArray(new float[16]), DType.F32, new long[] {1, 2, blockSize, 8}, new long[] {
                    16, 8, 0, 1
                });
        Tensor q = Tensors.random(new SplittableRandom(6), DType.F32, 1, 2, 1, 8);
        for (AttentionBackend backend : new AttentionBackend[] {Backends.get("cpu"), Backends.get("reference")}) {
            for (int[] table : new int[][] {{5, 0}, {0, 5}}) {
                Tensor out = Oracle.poisoned(DType.F32, 1, 2, 1, 8);
                IllegalArgumentException e = assertThrows(
                        IllegalArgumentException.class,
                        () -> backend.forwardPaged(
                                q,
                                new PagedKv(kCache, vCache, new int[][] {table}, new int[] {Integer.MAX_VALUE}),
                                out,
                                null,
                                AttentionOptions.defaults()));
                String bad = "blockTables[0][" + (table[0] == 5 ? 0 : 1) + "]";
                assertTrue(e.getMessage().startsWith(bad), bad + " expected: " + e.getMessage());
                assertTrue(Oracle.allNaN(out), "nothing written");
            }
        }
    }
}
