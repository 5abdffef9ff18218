package dev.aule.serving;

import dev.aule.Attention;
import dev.aule.AttentionOptions;
import dev.aule.AttentionResult;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.CacheIndex;
import dev.aule.testing.ForwardCase;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * q rotated inside the cached and paged calls: the same bits as rotating a copy of q yourself to the last
 * {@code Sq} positions of each sequence and calling without RoPE, the caller's q left as it was, and the
 * float64 oracle on the rotated rows and the cached (rotated) keys.
 */
class RopeInCallTest {
    private static final DType[] TYPES = {DType.F32, DType.F16, DType.BF16};

    /** Rotates a copy of q by {@code rope}, batch entry {@code b} from {@code keyLens[b] - Sq}; no keys: as is. */
    static Tensor rotatedByHand(Tensor q, Rope rope, int[] keyLens) {
        Tensor copy = Tensor.allocate(q.dtype(), q.batch(), q.heads(), q.seqLen(), q.headDim());
        float[] row = new float[q.headDim()];
        for (int b = 0; b < q.batch(); b++) {
            for (int h = 0; h < q.heads(); h++) {
                for (int s = 0; s < q.seqLen(); s++) {
                    q.readRow(b, h, s, row, 0);
                    copy.writeRow(b, h, s, row, 0);
                }
            }
            if (keyLens[b] > 0) {
                rope.apply(copy.sequence(b, 0, q.seqLen()), keyLens[b] - q.seqLen());
            }
        }
        return copy;
    }

    private static Rope randomRope(SplittableRandom rnd, int headDim, int positions) {
        int rotary = headDim % 2 == 0 && rnd.nextBoolean() ? headDim : 2 * Math.max(1, headDim / 4); // partial rotary
        Rope.Style style = rnd.nextBoolean() ? Rope.Style.NEOX : Rope.Style.GPTJ;
        return Rope.of(rotary, positions, 10000, style);
    }

    @Test
    void kvCacheDecodeWithRopeInTheCallEqualsRotatingQueriesYourself() {
        for (long seed = 1; seed <= 12; seed++) {
            SplittableRandom rnd = new SplittableRandom(seed);
            Geometry g = Geometry.random(rnd, 3, 24);
            DType dtype = TYPES[(int) (seed % 3)];
            int capacity = 60 + rnd.nextInt(40);
            Rope rope = randomRope(rnd, g.headDim(), capacity);
            KvCache cache = KvCache.allocate(dtype, g.sequences(), g.kvHeads(), capacity, g.headDim(), g.valueDim());
            AttentionOptions options = ForwardCase.randomOptions(rnd, g.queryHeads(), capacity);
            int[] steps = {8 + rnd.nextInt(20), 4, 1, 1};
            for (int step = 0; step < steps.length; step++) {
                int n = steps[step];
                int[] counts = new int[g.sequences()];
                for (int b = 0; b < counts.length; b++) {
                    counts[b] = step == 0 && rnd.nextInt(4) == 0 ? 0 : n; // an empty sequence stays unrotated
                }
                cache.append(
                        Tensors.random(rnd, dtype, g.sequences(), g.kvHeads(), n, g.headDim()),
                        Tensors.random(rnd, dtype, g.sequences(), g.kvHeads(), n, g.valueDim()),
                        counts,
                        rope);
                Tensor q = Tensors.random(rnd, dtype, g.sequences(), g.queryHeads(), n, g.headDim());
                float[] before = q.toFloatArray();
                AttentionResult inCall = cache.attention(q, options, rope);
                assertArrayEquals(before, q.toFloatArray(), "the caller's q is not rotated");
                Tensor rotated = rotatedByHand(q, rope, cache.lengths());
                AttentionResult byHand = cache.attention(rotated, options);
                String where =
                        "seed " + seed + " step " + step + " " + rope + " lengths " + Arrays.toString(cache.lengths());
                assertArrayEquals(byHand.out().toFloatArray(), inCall.out().toFloatArray(), where);
                assertArrayEquals(byHand.lse().toFloatArray(), inCall.lse().toFloatArray(), where);
                for (String name : new String[] {"cpu", "reference"}) {
                    Tensor out = Oracle.poisoned(dtype, g.sequences(), g.queryHeads(), n, g.valueDim());
                    Tensor lse = Oracle.poisoned(DType.F32, g.sequences(), g.queryHeads(), n, 1);
                    Backends.get(name)
                            .forwardCached(
                                    rope.rotatedQueries(q, cache.lengths()),
                                    cache.keys(),
                                    cache.values(),
                                    cache.lengths(),
                                    out,
                                    lse,
                                    options);
                    for (int b = 0; b < g.sequences(); b++) {
                        Oracle.assertRowsMatch(
                                out,
                                lse,
                                rotated,
                                b,
                                0,
                                n,
                                Oracle.prefix(cache.keys(), b, cache.length(b)),
                                Oracle.prefix(cache.values(), b, cache.length(b)),
                                g.valueDim(),
                                options,
                                name + " sequence " + b + ", " + where);
                    }
                }
                Tensor out = Tensor.allocate(dtype, g.sequences(), g.queryHeads(), n, g.valueDim());
                cache.attentionInto(q, out, null, options, rope);
                assertArrayEquals(inCall.out().toFloatArray(), out.toFloatArray(), "attentionInto, " + where);
            }
        }
    }

    @Test
    void chosenRowsWithRopeInTheCallUseTheirOwnSequencesPositions() {
        SplittableRandom rnd = new SplittableRandom(20);
        Rope rope = Rope.of(16, 64, 500, Rope.Style.NEOX);
        KvCache cache = KvCache.allocate(DType.F32, 3, 2, 64, 16);
        cache.append(
                Tensors.random(rnd, DType.F32, 3, 2, 40, 16),
                Tensors.random(rnd, DType.F32, 3, 2, 40, 16),
                new int[] {40, 9, 25},
                rope);
        Tensor q = Tensors.random(rnd, DType.F32, 4, 4, 2, 16);
        int[] rows = {1, 2, 1, 0};
        AttentionOptions causal = AttentionOptions.builder().causal(true).build();
        AttentionResult inCall = cache.attention(rows, q, causal, rope);
        int[] lens = {9, 25, 9, 40};
        AttentionResult byHand = cache.attention(rows, rotatedByHand(q, rope, lens), causal);
        assertArrayEquals(byHand.out().toFloatArray(), inCall.out().toFloatArray());
        assertArrayEquals(byHand.lse().toFloatArray(), inCall.lse().toFloatArray());
    }

    @Test
    void pagedDecodeWithRopeInTheCallEqualsRotatingQueriesYourself() {
        for (long seed = 1; seed <= 6; seed++) {
            SplittableRandom rnd = new SplittableRandom(seed);
            DType dtype = TYPES[(int) (seed % 3)];
            int headDim = new int[] {16, 32, 8}[(int) (seed % 3)];
            Rope rope = randomRope(rnd, headDim, 200);
            PagedKvCache cache = PagedKvCache.create(dtype, 64, 4, 2, headDim);
            int[] seqs = {cache.newSequence(), cache.newSequence(), cache.newSequence()};
            AttentionOptions options = ForwardCase.randomOptions(rnd, 4, 60);
            for (int step = 0; step < 4; step++) {
                int n = step == 0 ? 5 + rnd.nextInt(20) : 1;
                cache.append(
                        seqs,
                        Tensors.random(rnd, dtype, 3, 2, n, headDim),
                        Tensors.random(rnd, dtype, 3, 2, n, headDim),
                        rope);
                Tensor q = Tensors.random(rnd, dtype, 3, 4, n, headDim);
                float[] before = q.toFloatArray();
                AttentionResult inCall = cache.attention(seqs, q, options, rope);
                assertArrayEquals(before, q.toFloatArray(), "the caller's q is not rotated");
                int[] lens = new int[3];
                for (int b = 0; b < 3; b++) {
                    lens[b] = cache.length(seqs[b]);
                }
                AttentionResult byHand = cache.attention(seqs, rotatedByHand(q, rope, lens), options);
                String where = "seed " + seed + " step " + step;
                assertArrayEquals(byHand.out().toFloatArray(), inCall.out().toFloatArray(), where);
                assertArrayEquals(byHand.lse().toFloatArray(), inCall.lse().toFloatArray(), where);
                // The API form on the cache's own pools and tables.
                int[][] tables = new int[3][];
                for (int b = 0; b < 3; b++) {
                    tables[b] = cache.blockTable(seqs[b]);
                }
                AttentionResult api =
                        Attention.forwardPaged(q, cache.keyBlocks(), cache.valueBlocks(), tables, lens, options, rope);
                assertArrayEquals(inCall.out().toFloatArray(), api.out().toFloatArray(), where);
            }
        }
    }

    @Test
    void theApiRotatesFromTheLeftPad() {
        SplittableRandom rnd = new SplittableRandom(21);
        Rope rope = Rope.of(32, 100, 10000, Rope.Style.GPTJ);
        Tensor kCache = Tensors.random(rnd, DType.F32, 2, 2, 80, 32);
        Tensor vCache = Tensors.random(rnd, DType.F32, 2, 2, 80, 32);
        Tensor q = Tensors.random(rnd, DType.F32, 3, 4, 3, 32);
        CacheIndex index = new CacheIndex(new int[] {80, 50, 0}, new int[] {1, 0, 1}, new int[] {20, 0, 0});
        AttentionOptions causal =
                AttentionOptions.builder().causal(true).window(30, -1).build();
        AttentionResult inCall = Attention.forwardCached(q, kCache, vCache, index, causal, rope);
        // Positions count from the pad: entry 0 sees 60 keys, its rows are positions 57, 58 and 59.
        Tensor rotated = rotatedByHand(q, rope, new int[] {60, 50, 0});
        AttentionResult byHand = Attention.forwardCached(rotated, kCache, vCache, index, causal);
        assertArrayEquals(byHand.out().toFloatArray(), inCall.out().toFloatArray());
        assertArrayEquals(byHand.lse().toFloatArray(), inCall.lse().toFloatArray());
        for (int b = 0; b < 3; b++) {
            Oracle.assertRowsMatch(
                    inCall.out(),
                    inCall.lse(),
                    rotated,
                    b,
                    0,
                    3,
                    CacheIndexTest.rows(
                            kCache, index.cacheBatchIdx()[b], index.cacheLeftpad()[b], index.cacheLens()[b]),
                    CacheIndexTest.rows(
                            vCache, index.cacheBatchIdx()[b], index.cacheLeftpad()[b], index.cacheLens()[b]),
                    32,
                    causal,
                    "entry " + b);
        }
    }

    @Test
    void queriesThatDoNotFitTheirSequenceOrTheTableAreRejected() {
        SplittableRandom rnd = new SplittableRandom(22);
        Rope rope = Rope.of(16, 12, 10000, Rope.Style.NEOX);
        KvCache cache = KvCache.allocate(DType.F32, 2, 1, 16, 16);
        cache.append(
                Tensors.random(rnd, DType.F32, 2, 1, 3, 16),
                Tensors.random(rnd, DType.F32, 2, 1, 3, 16),
                new int[] {3, 1},
                null);
        AttentionOptions options = AttentionOptions.defaults();
        Tensor q2 = Tensors.random(rnd, DType.F32, 2, 2, 2, 16);
        // Sequence 1 holds one token, q has two rows: they cannot be its last positions.
        Tensor out = Oracle.poisoned(DType.F32, 2, 2, 2, 16);
        CacheIndexTest.assertRejected("q", () -> cache.attentionInto(q2, out, null, options, rope));
        assertTrue(Oracle.allNaN(out));
        // Positions past the table: 13 tokens, a table of 12.
        cache.append(Tensors.random(rnd, DType.F32, 2, 1, 10, 16), Tensors.random(rnd, DType.F32, 2, 1, 10, 16));
        Tensor q1 = Tensors.random(rnd, DType.F32, 2, 2, 1, 16);
        CacheIndexTest.assertRejected("q (sequence 0)", () -> cache.attention(q1, options, rope));
        // Rows shorter than the rotary dim.
        Rope wide = Rope.of(32, 64, 10000, Rope.Style.NEOX);
        CacheIndexTest.assertRejected(
                "q",
                () -> Attention.forwardCached(
                        q1, cache.keys(), cache.values(), CacheIndex.ofLengths(cache.lengths()), options, wide));
        // A q whose batch is not the cache's, with no rows to choose sequences.
        Tensor q3 = Tensors.random(rnd, DType.F32, 3, 2, 1, 16);
        CacheIndexTest.assertRejected("q", () -> cache.attention(q3, options, rope));
        CacheIndexTest.assertRejected(
                "contextLens",
                () -> Attention.forwardPaged(
                        q3, cache.keys(), cache.values(), new int[][] {{0}, {1}}, new int[] {1, 1}, options, rope));
        PagedKvCache paged = PagedKvCache.create(DType.F32, 8, 4, 1, 16);
        int seq = paged.newSequence();
        paged.append(seq, Tensors.random(rnd, DType.F32, 1, 1, 1, 16), Tensors.random(rnd, DType.F32, 1, 1, 1, 16));
        Tensor q = Tensors.random(rnd, DType.F32, 1, 2, 2, 16);
        CacheIndexTest.assertRejected("q", () -> paged.attention(new int[] {seq}, q, options, rope));
        CacheIndexTest.assertRejected("seqs[0]", () -> paged.attention(new int[] {seq + 1}, q, options, rope));
    }
}
