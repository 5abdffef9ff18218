package dev.aule.serving;

import dev.aule.AttentionOptions;
import dev.aule.AttentionResult;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.AttentionBackend;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Query-aware sparse decode over a paged cache, against the float64 oracle over the blocks each head reads. */
class SparseDecodeTest {
    private static final AttentionOptions CAUSAL =
            AttentionOptions.builder().causal(true).build();
    private static final AttentionBackend[] BACKENDS = {Backends.get("cpu"), Backends.get("reference")};

    /** A cache of {@code lengths.length} sequences of random keys, appended in random chunks. */
    private static PagedKvCache filled(
            SplittableRandom rnd, DType dtype, int blockSize, Geometry g, int[] lengths, boolean summariesFirst) {
        int total = 0;
        for (int len : lengths) {
            total += PagedKvCache.blocksFor(len, blockSize);
        }
        PagedKvCache cache =
                PagedKvCache.create(dtype, 2 * total + 8, blockSize, g.kvHeads(), g.headDim(), g.valueDim());
        if (summariesFirst) {
            cache.enableKeySummaries();
        }
        for (int len : lengths) {
            int seq = cache.newSequence();
            int done = 0;
            while (done < len) {
                int n = Math.min(len - done, 1 + rnd.nextInt(2 * blockSize + 3));
                cache.append(
                        seq,
                        Tensors.random(rnd, DType.F32, 1, g.kvHeads(), n, g.headDim()),
                        Tensors.random(rnd, DType.F32, 1, g.kvHeads(), n, g.valueDim()));
                done += n;
            }
        }
        if (!summariesFirst) {
            cache.enableKeySummaries();
        }
        return cache;
    }

    /** The keys (or values) of logical {@code blocks} of {@code seq}, KV head {@code head}, as {@code [1, 1, n, D]}. */
    private static Tensor gather(PagedKvCache cache, Tensor pool, int seq, int head, int[] blocks) {
        int[] table = cache.blockTable(seq);
        int len = cache.length(seq);
        int bs = cache.blockSize();
        List<float[]> rows = new ArrayList<>();
        for (int logical : blocks) {
            for (int slot = 0; slot < bs && logical * bs + slot < len; slot++) {
                float[] row = new float[pool.headDim()];
                pool.readRow(table[logical], head, slot, row, 0);
                rows.add(row);
            }
        }
        float[] data = new float[rows.size() * pool.headDim()];
        for (int r = 0; r < rows.size(); r++) {
            System.arraycopy(rows.get(r), 0, data, r * pool.headDim(), pool.headDim());
        }
        return Tensor.of(data, 1, 1, rows.size(), pool.headDim());
    }

    private static Tensor row(Tensor t, int b, int h) {
        float[] r = new float[t.headDim()];
        t.readRow(b, h, 0, r, 0);
        return Tensor.of(r, 1, 1, 1, t.headDim());
    }

    /** Each query head's output equals exact attention over the keys of the blocks its KV head's group chose. */
    private static void assertExactOverChosen(
            PagedKvCache cache, int[] seqs, Tensor q, SparseBudget budget, AttentionResult r, AttentionOptions o) {
        for (int i = 0; i < seqs.length; i++) {
            Tensor qi = q.sequence(i, 0, 1);
            int[][] chosen = cache.sparseBlocks(seqs[i], qi, budget);
            int group = q.heads() / cache.kvHeads();
            for (int h = 0; h < q.heads(); h++) {
                // The heads of a KV head read the union of their choices.
                java.util.TreeSet<Integer> union = new java.util.TreeSet<>();
                for (int sibling = h / group * group; sibling < (h / group + 1) * group; sibling++) {
                    Arrays.stream(chosen[sibling]).forEach(union::add);
                }
                int[] read = union.stream().mapToInt(Integer::intValue).toArray();
                Tensor k = gather(cache, cache.keyBlocks(), seqs[i], h / group, read);
                Tensor v = gather(cache, cache.valueBlocks(), seqs[i], h / group, read);
                Tensor qh = row(q, i, h);
                AttentionResult ref = Oracle.forward(qh, k, v, cache.valueDim(), o);
                Tensor lse = Tensor.of(new float[] {r.lse().get(i, h, 0, 0)}, 1, 1, 1, 1);
                Oracle.assertMatches(row(r.out(), i, h), lse, ref, qh, k, o, "sequence " + i + " head " + h);
            }
        }
    }

    @Test
    void matchesTheOracleOverTheChosenBlocks() {
        for (long seed = 0; seed < 25; seed++) {
            matchesTheOracleOverTheChosenBlocks(seed);
        }
    }

    private static void matchesTheOracleOverTheChosenBlocks(long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        int top = rnd.nextInt(7);
        Geometry g = Geometry.random(rnd, 3, 24);
        int blockSize = new int[] {1, 4, 16}[rnd.nextInt(3)];
        int[] lengths = new int[g.sequences()];
        for (int i = 0; i < lengths.length; i++) {
            lengths[i] = 1 + rnd.nextInt(12 * blockSize);
        }
        DType dtype = new DType[] {DType.F32, DType.F16, DType.BF16}[rnd.nextInt(3)];
        PagedKvCache cache = filled(rnd, dtype, blockSize, g, lengths, rnd.nextBoolean());
        int[] seqs = new int[lengths.length];
        Arrays.setAll(seqs, i -> i);
        Tensor q = Tensors.random(rnd, DType.F32, seqs.length, g.queryHeads(), 1, g.headDim());
        SparseBudget budget = new SparseBudget(top, 1 + rnd.nextInt(2));
        AttentionOptions options = rnd.nextBoolean()
                ? CAUSAL
                : AttentionOptions.builder()
                        .softcap(rnd.nextBoolean() ? 0f : 5f)
                        .scale(0.3f)
                        .build();
        for (AttentionBackend backend : BACKENDS) {
            AttentionResult r = new AttentionResult(
                    Tensor.allocate(DType.F32, seqs.length, g.queryHeads(), 1, g.valueDim()),
                    Tensor.allocate(DType.F32, seqs.length, g.queryHeads(), 1, 1));
            cache.sparseAttentionInto(seqs, q, budget, r.out(), r.lse(), options, backend);
            assertExactOverChosen(cache, seqs, q, budget, r, options);
        }
    }

    /** With a budget of at least the sequence's blocks, sparse decode is exact attention. */
    @Test
    void aBudgetCoveringTheSequenceIsExactAttention() {
        SplittableRandom rnd = new SplittableRandom(7);
        Geometry g = new Geometry(2, 2, 4, 32, 32);
        PagedKvCache cache = filled(rnd, DType.F32, 8, g, new int[] {37, 64}, true);
        Tensor q = Tensors.random(rnd, DType.F32, 2, 8, 1, 32);
        AttentionResult sparse = cache.sparseAttention(new int[] {0, 1}, q, new SparseBudget(7, 1), CAUSAL);
        AttentionResult exact = cache.attention(new int[] {0, 1}, q, CAUSAL);
        for (int i = 0; i < 2; i++) {
            Tensor k = Oracle.prefix(gatherAll(cache, cache.keyBlocks(), i), 0, cache.length(i));
            Tensor v = Oracle.prefix(gatherAll(cache, cache.valueBlocks(), i), 0, cache.length(i));
            AttentionResult ref = Oracle.forward(q.sequence(i, 0, 1), k, v, 32, CAUSAL);
            Oracle.assertMatches(
                    sparse.out().sequence(i, 0, 1),
                    sparse.lse().sequence(i, 0, 1),
                    ref,
                    q.sequence(i, 0, 1),
                    k,
                    CAUSAL,
                    "sparse " + i);
            Oracle.assertMatches(
                    exact.out().sequence(i, 0, 1),
                    exact.lse().sequence(i, 0, 1),
                    ref,
                    q.sequence(i, 0, 1),
                    k,
                    CAUSAL,
                    "exact " + i);
        }
    }

    /** All keys of {@code seq}, every head, as {@code [1, Hkv, len, D]}. */
    private static Tensor gatherAll(PagedKvCache cache, Tensor pool, int seq) {
        int len = cache.length(seq);
        Tensor t = Tensor.allocate(DType.F32, 1, pool.heads(), len, pool.headDim());
        int[] table = cache.blockTable(seq);
        float[] row = new float[pool.headDim()];
        for (int h = 0; h < pool.heads(); h++) {
            for (int j = 0; j < len; j++) {
                pool.readRow(table[j / cache.blockSize()], h, j % cache.blockSize(), row, 0);
                t.writeRow(0, h, j, row, 0);
            }
        }
        return t;
    }

    /**
     * The choice: the newest blocks always; the others are the blocks of largest bound, and every bound bounds the
     * scores of its block's keys from above.
     */
    @Test
    void choosesTheRecentBlocksAndTheLargestBounds() {
        for (long seed = 100; seed < 140; seed++) {
            choosesTheRecentBlocksAndTheLargestBounds(seed);
        }
    }

    private static void choosesTheRecentBlocksAndTheLargestBounds(long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        Geometry g = Geometry.random(rnd, 1, 16);
        int blockSize = 1 + rnd.nextInt(8);
        int len = 1 + rnd.nextInt(20 * blockSize);
        PagedKvCache cache = filled(rnd, DType.F32, blockSize, g, new int[] {len}, rnd.nextBoolean());
        Tensor q = Tensors.random(rnd, DType.F32, 1, g.queryHeads(), 1, g.headDim());
        SparseBudget budget = new SparseBudget(rnd.nextInt(6), 1 + rnd.nextInt(3));
        int[][] chosen = cache.sparseBlocks(0, q, budget);
        int blocks = cache.blockTable(0).length;
        for (int h = 0; h < g.queryHeads(); h++) {
            int[] mine = chosen[h];
            assertEquals(Math.min(blocks, budget.blocks()), mine.length, "head " + h);
            for (int i = 1; i < mine.length; i++) {
                assertTrue(mine[i - 1] < mine[i], "position order: " + Arrays.toString(mine));
            }
            for (int r = 1; r <= Math.min(blocks, budget.recentBlocks()); r++) {
                assertTrue(Arrays.binarySearch(mine, blocks - r) >= 0, "recent block " + (blocks - r));
            }
            int kvHead = h / g.group();
            float[] qh = new float[g.headDim()];
            q.readRow(0, h, 0, qh, 0);
            double[] bound = new double[blocks];
            for (int blk = 0; blk < blocks; blk++) {
                Tensor keys = gather(cache, cache.keyBlocks(), 0, kvHead, new int[] {blk});
                double best = Double.NEGATIVE_INFINITY;
                double[] min = new double[g.headDim()];
                double[] max = new double[g.headDim()];
                Arrays.fill(min, Double.POSITIVE_INFINITY);
                Arrays.fill(max, Double.NEGATIVE_INFINITY);
                for (int j = 0; j < keys.seqLen(); j++) {
                    double dot = 0;
                    for (int d = 0; d < g.headDim(); d++) {
                        double x = keys.get(0, 0, j, d);
                        dot += qh[d] * x;
                        min[d] = Math.min(min[d], x);
                        max[d] = Math.max(max[d], x);
                    }
                    best = Math.max(best, dot);
                }
                for (int d = 0; d < g.headDim(); d++) {
                    bound[blk] += Math.max(qh[d] * min[d], qh[d] * max[d]);
                }
                assertTrue(best <= bound[blk] + 1e-4, "block " + blk + ": score " + best + " over bound " + bound[blk]);
            }
            if (blocks > budget.blocks()) {
                double lowestChosen = Double.POSITIVE_INFINITY;
                double highestLeft = Double.NEGATIVE_INFINITY;
                for (int blk = 0; blk < blocks - budget.recentBlocks(); blk++) {
                    if (Arrays.binarySearch(mine, blk) >= 0) {
                        lowestChosen = Math.min(lowestChosen, bound[blk]);
                    } else {
                        highestLeft = Math.max(highestLeft, bound[blk]);
                    }
                }
                assertTrue(
                        budget.topBlocks() == 0 || lowestChosen >= highestLeft - 1e-4,
                        "a block left out has a larger bound: " + lowestChosen + " < " + highestLeft);
            }
        }
    }

    /** A block holding keys aligned with the query is found among many random ones. */
    @Test
    void findsThePlantedBlock() {
        SplittableRandom rnd = new SplittableRandom(11);
        int d = 64;
        PagedKvCache cache = PagedKvCache.create(DType.F16, 300, 16, 2, d);
        cache.enableKeySummaries();
        int seq = cache.newSequence();
        int planted = 57;
        float[] direction = new float[d];
        for (int i = 0; i < d; i++) {
            direction[i] = (float) rnd.nextGaussian() / 8f;
        }
        for (int blk = 0; blk < 256; blk++) {
            Tensor k = Tensors.random(rnd, DType.F32, 1, 2, 16, d);
            if (blk == planted) {
                for (int h = 0; h < 2; h++) {
                    for (int j = 0; j < 16; j++) {
                        for (int i = 0; i < d; i++) {
                            k.set(0, h, j, i, k.get(0, h, j, i) + 10 * direction[i]);
                        }
                    }
                }
            }
            cache.append(seq, k, Tensors.random(rnd, DType.F32, 1, 2, 16, d));
        }
        Tensor q = Tensor.allocate(DType.F32, 1, 4, 1, d);
        for (int h = 0; h < 4; h++) {
            for (int i = 0; i < d; i++) {
                q.set(0, h, 0, i, 8 * direction[i]);
            }
        }
        int[][] chosen = cache.sparseBlocks(seq, q, new SparseBudget(4, 1));
        for (int h = 0; h < 4; h++) {
            assertTrue(Arrays.binarySearch(chosen[h], planted) >= 0, "head " + h + ": " + Arrays.toString(chosen[h]));
        }
    }

    /** Forks share the parent's summaries and diverge with their own appends; copy-on-write keeps them right. */
    @Test
    void forksKeepTheirOwnSummaries() {
        SplittableRandom rnd = new SplittableRandom(3);
        Geometry g = new Geometry(1, 1, 2, 16, 16);
        PagedKvCache cache = filled(rnd, DType.F32, 4, g, new int[] {21}, true);
        int child = cache.fork(0);
        cache.append(child, Tensors.random(rnd, DType.F32, 1, 1, 9, 16), Tensors.random(rnd, DType.F32, 1, 1, 9, 16));
        cache.append(0, Tensors.random(rnd, DType.F32, 1, 1, 2, 16), Tensors.random(rnd, DType.F32, 1, 1, 2, 16));
        PagedKvCache rebuilt = PagedKvCache.create(DType.F32, 40, 4, 1, 16);
        int[] seqs = {0, child};
        Tensor q = Tensors.random(rnd, DType.F32, 2, 2, 1, 16);
        SparseBudget budget = new SparseBudget(2, 1);
        AttentionResult r = cache.sparseAttention(seqs, q, budget, CAUSAL);
        assertExactOverChosen(cache, seqs, q, budget, r, CAUSAL);
        // The summaries after fork and appends equal those built from the stored keys afresh.
        for (int s : seqs) {
            int copy = rebuilt.newSequence();
            rebuilt.append(copy, gatherAll(cache, cache.keyBlocks(), s), gatherAll(cache, cache.valueBlocks(), s));
        }
        rebuilt.enableKeySummaries();
        for (int i = 0; i < 2; i++) {
            Tensor qi = q.sequence(i, 0, 1);
            int[][] a = cache.sparseBlocks(seqs[i], qi, budget);
            int[][] b = rebuilt.sparseBlocks(i, qi, budget);
            for (int h = 0; h < 2; h++) {
                assertArrayEquals(b[h], a[h], "sequence " + i + " head " + h);
            }
        }
    }

    @Test
    void emptySequencesGetZeroRowsAndMinusInfinity() {
        PagedKvCache cache = PagedKvCache.create(DType.F32, 4, 4, 1, 8);
        cache.enableKeySummaries();
        int seq = cache.newSequence();
        AttentionResult r = cache.sparseAttention(
                new int[] {seq}, Tensor.allocate(DType.F32, 1, 2, 1, 8), new SparseBudget(1, 1), CAUSAL);
        for (float x : r.out().toFloatArray()) {
            assertEquals(0f, x);
        }
        for (float x : r.lse().toFloatArray()) {
            assertEquals(Float.NEGATIVE_INFINITY, x);
        }
    }

    @Test
    void refusesBadInputAndWritesNothing() {
        SplittableRandom rnd = new SplittableRandom(5);
        Geometry g = new Geometry(1, 2, 2, 16, 16);
        PagedKvCache plain = PagedKvCache.create(DType.F32, 8, 4, 2, 16);
        int s0 = plain.newSequence();
        plain.append(s0, Tensors.random(rnd, DType.F32, 1, 2, 5, 16), Tensors.random(rnd, DType.F32, 1, 2, 5, 16));
        Tensor q = Tensors.random(rnd, DType.F32, 1, 4, 1, 16);
        SparseBudget budget = new SparseBudget(1, 1);
        assertThrows(IllegalStateException.class, () -> plain.sparseAttention(new int[] {s0}, q, budget, CAUSAL));
        assertThrows(IllegalStateException.class, () -> plain.sparseBlocks(s0, q, budget));
        PagedKvCache cache = filled(rnd, DType.F32, 4, g, new int[] {13, 9}, true);
        int streaming = cache.newSequence(new StreamingPolicy(4, 8));
        cache.append(
                streaming, Tensors.random(rnd, DType.F32, 1, 2, 3, 16), Tensors.random(rnd, DType.F32, 1, 2, 3, 16));
        Tensor out = Oracle.poisoned(DType.F32, 1, 4, 1, 16);
        Tensor lse = Oracle.poisoned(DType.F32, 1, 4, 1, 1);
        record Case(String argument, Runnable call) {}
        java.util.function.Function<AttentionOptions, Runnable> withOptions =
                options -> () -> cache.sparseAttentionInto(new int[] {0}, q, budget, out, lse, options);
        List<Case> cases = List.of(
                new Case(
                        "q",
                        () -> cache.sparseAttentionInto(
                                new int[] {0},
                                Tensors.random(rnd, DType.F32, 1, 4, 2, 16),
                                budget,
                                Oracle.poisoned(DType.F32, 1, 4, 2, 16),
                                null,
                                CAUSAL)),
                new Case(
                        "q",
                        () -> cache.sparseAttentionInto(
                                new int[] {0}, Tensors.random(rnd, DType.F32, 1, 3, 1, 16), budget, out, lse, CAUSAL)),
                new Case(
                        "options",
                        withOptions.apply(
                                AttentionOptions.builder().window(8, 0).build())),
                new Case(
                        "options",
                        withOptions.apply(AttentionOptions.builder()
                                .alibiSlopes(new float[] {1, 1, 1, 1})
                                .build())),
                new Case(
                        "options",
                        withOptions.apply(
                                AttentionOptions.builder().dropout(0.1f, 1).build())),
                new Case(
                        "options",
                        withOptions.apply(AttentionOptions.builder()
                                .sinks(new float[] {0, 0, 0, 0})
                                .build())),
                new Case(
                        "seqs[0]", () -> cache.sparseAttentionInto(new int[] {streaming}, q, budget, out, lse, CAUSAL)),
                new Case("seqs", () -> cache.sparseAttentionInto(new int[] {0, 0}, q, budget, out, lse, CAUSAL)),
                new Case("seqs[0]", () -> cache.sparseAttentionInto(new int[] {9}, q, budget, out, lse, CAUSAL)),
                new Case(
                        "blockTables, contextLens",
                        () -> cache.sparseAttentionInto(new int[] {0, 1}, q, budget, out, lse, CAUSAL)),
                new Case("q", () -> cache.sparseBlocks(0, Tensors.random(rnd, DType.F32, 1, 4, 1, 8), budget)),
                new Case("topBlocks", () -> new SparseBudget(-1, 1)),
                new Case("recentBlocks", () -> new SparseBudget(3, 0)),
                new Case("tokens", () -> SparseBudget.ofTokens(15, 16, 1)));
        for (Case c : cases) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, c.call()::run, c.argument());
            assertTrue(e.getMessage().startsWith(c.argument()), c.argument() + ": " + e.getMessage());
            assertTrue(Oracle.allNaN(out) && Oracle.allNaN(lse), "nothing written: " + c.argument());
        }
        assertEquals(new SparseBudget(126, 2), SparseBudget.ofTokens(2048, 16, 2));
    }
}
