package dev.aule.cpu.vector;

import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The forward's larger register blocks and its softmax fused into the score product give the bits of the 4-row
 * kernels and the separate softmax passes, at the width this JVM runs (the build runs this class at 512, 256 and 128
 * bits where the CPU has them): {@link Products#multiplySoftmax} against {@link Products#multiply} then
 * {@link Reductions#max} and {@link Reductions#expSum}, {@link Products#multiply} over many rows against its 4-row
 * calls, and {@link Products#accumulateTile} against {@link Products#accumulate}. Row counts cover 4-row groups alone, pairs of 6-row blocks with and without 4-row
 * groups left over, and value rows of 1, 2, 3, 4 and 8 vectors; the tile kernels also from a later row on (the
 * rows of a causal diagonal block), leaving the rows before it as they were.
 */
class ForwardBlocksKernelsTest {
    private static final int L = SimdWidth.lanes();
    private static final int KT = SimdWidth.keyTile();
    private static final int[] ROWS = {4, 8, 12, 16, 24, 28, 64};

    @Test
    void fusedScoresAndSoftmaxGiveTheBitsOfTheSeparatePasses() {
        SplittableRandom rnd = new SplittableRandom(31);
        for (int rows : ROWS) {
            for (int inner : new int[] {1, 7, 32, 64, 128}) {
                for (int from : new int[] {0, 4, 8}) {
                    if (from < rows) {
                        fusedScoresOfRows(rnd, from, rows, inner);
                    }
                }
            }
        }
    }

    /** Rows {@code [from, rows)} fused; the rows before {@code from} are neither read nor written. */
    private static void fusedScoresOfRows(SplittableRandom rnd, int from, int rows, int inner) {
        float[] a = random(rnd, rows * inner, 1f);
        float[] b = random(rnd, 3 + inner * KT, 1f);
        boolean[] fuse = new boolean[rows];
        float[] m = new float[rows];
        float[] l = new float[rows];
        for (int t = 0; t < rows; t++) {
            fuse[t] = t % 3 != 1; // rows the caller leaves to its general update in between
            // A first block (max -inf), a max the block does not move, and one it does.
            m[t] = t % 4 == 0 ? Float.NEGATIVE_INFINITY : t % 4 == 1 ? 100f : -3f;
            l[t] = t % 4 == 0 ? 0f : 1.5f + t;
        }
        if (rows > 8) {
            Arrays.fill(a, 5 * inner, 6 * inner, Float.NaN); // row 5: a NaN max, left to the caller
            fuse[5] = true;
        }
        float[] expected = new float[rows * KT];
        Products.multiply(a, 0, rows, inner, b, 3, expected, 0, KT);
        float[] raw = expected.clone();
        float[] mExpected = m.clone();
        float[] lExpected = l.clone();
        float[] alphaExpected = new float[rows];
        boolean[] done = new boolean[rows];
        for (int t = 0; t < rows; t++) {
            if (t < from) { // untouched
                Arrays.fill(expected, t * KT, (t + 1) * KT, 0f);
                done[t] = fuse[t];
                continue;
            }
            float mNew = Math.max(m[t], Reductions.max(expected, t * KT, KT));
            if (!fuse[t] || !Float.isFinite(mNew)) {
                continue;
            }
            alphaExpected[t] = mNew == m[t] ? 1f : (float) Math.exp(m[t] - mNew);
            lExpected[t] = l[t] * alphaExpected[t] + Reductions.expSum(expected, t * KT, KT, mNew);
            mExpected[t] = mNew;
            done[t] = true;
        }
        float[] c = new float[rows * KT];
        float[] alpha = new float[rows];
        Products.multiplySoftmax(a, from, rows, inner, b, 3, c, fuse, m, l, alpha);
        String where = "rows [" + from + ", " + rows + ") inner " + inner;
        for (int t = 0; t < rows; t++) {
            assertEquals(done[t], fuse[t], where + " row " + t);
        }
        assertBitwiseEqual(expected, c, where + " probabilities");
        assertBitwiseEqual(mExpected, m, where + " max");
        assertBitwiseEqual(lExpected, l, where + " sum");
        assertBitwiseEqual(alphaExpected, alpha, where + " alpha");
        if (rows > 8 && from <= 5) {
            assertBitwiseEqual(
                    Arrays.copyOfRange(raw, 5 * KT, 6 * KT),
                    Arrays.copyOfRange(c, 5 * KT, 6 * KT),
                    where + " the NaN row's raw scores");
        }
    }

    /** The product in 6-row blocks (GEMM layout: rows of c wider than a panel) gives the bits of 4-row calls. */
    @Test
    void productGivesTheBitsOfFourRowCallsAtEveryRowCount() {
        SplittableRandom rnd = new SplittableRandom(33);
        for (int rows : ROWS) {
            for (int inner : new int[] {1, 7, 64, 384}) {
                int cStride = 3 * KT + 5;
                float[] a = random(rnd, 2 + rows * inner, 1f);
                float[] b = random(rnd, 3 + inner * KT, 1f);
                float[] expected = random(rnd, 7 + rows * cStride, 1f);
                float[] actual = expected.clone();
                for (int t = 0; t < rows; t += 4) {
                    Products.multiply(a, 2 + t * inner, 4, inner, b, 3, expected, 7 + KT + t * cStride, cStride);
                }
                Products.multiply(a, 2, rows, inner, b, 3, actual, 7 + KT, cStride);
                assertBitwiseEqual(expected, actual, "multiply rows " + rows + " inner " + inner);
            }
        }
    }

    /** A product split over consecutive ranges of the inner dimension, each adding to c, gives one pass's bits. */
    @Test
    void productSplitOverTheInnerDimensionGivesTheBitsOfOnePass() {
        SplittableRandom rnd = new SplittableRandom(34);
        for (int rows : ROWS) {
            for (int inner : new int[] {1, 130, 384}) {
                int aStride = inner + 3;
                int cStride = 2 * KT + 1;
                float[] a = random(rnd, 2 + rows * aStride, 1f);
                float[] b = random(rnd, 3 + inner * KT, 1f);
                float[] whole = random(rnd, 7 + rows * cStride, 1f);
                float[] split = whole.clone();
                Products.multiply(a, 2, aStride, rows, inner, b, 3, whole, 7, cStride, false);
                for (int x0 = 0; x0 < inner; x0 += 64) {
                    int part = Math.min(64, inner - x0);
                    Products.multiply(a, 2 + x0, aStride, rows, part, b, 3 + x0 * KT, split, 7, cStride, x0 > 0);
                }
                assertBitwiseEqual(whole, split, "split product rows " + rows + " inner " + inner);
            }
        }
    }

    @Test
    void tileAccumulateGivesTheBitsOfTheFourRowBlocks() {
        SplittableRandom rnd = new SplittableRandom(32);
        for (int rows : ROWS) {
            for (int dvp : new int[] {L, 2 * L, 3 * L, 4 * L, 8 * L}) {
                for (int keys : new int[] {1, KT / 2 + 1, KT}) {
                    int stride = dvp + (keys % 2 == 0 ? 0 : L);
                    float[] p = random(rnd, rows * KT, 1f);
                    float[] v = random(rnd, 5 + keys * stride, 1f);
                    float[] alpha = random(rnd, rows, 1f);
                    float[] start = random(rnd, rows * dvp, 4f);
                    for (int from = 0; from < rows; from += 4) {
                        float[] expected = start.clone();
                        float[] actual = start.clone();
                        Products.accumulate(p, rows, keys, 0, v, 5, stride, dvp, expected, alpha);
                        // The rows before from are neither read nor written.
                        System.arraycopy(start, 0, expected, 0, from * dvp);
                        Products.accumulateTile(p, from, rows, keys, v, 5, stride, dvp, actual, alpha);
                        assertBitwiseEqual(
                                expected,
                                actual,
                                "accumulateTile rows [" + from + ", " + rows + ") dvp " + dvp + " keys " + keys);
                    }
                }
            }
        }
    }

    private static float[] random(SplittableRandom rnd, int n, float range) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) ((rnd.nextDouble() * 2 - 1) * range);
        }
        return x;
    }

    private static void assertBitwiseEqual(float[] expected, float[] actual, String where) {
        for (int i = 0; i < expected.length; i++) {
            assertEquals(
                    Float.floatToRawIntBits(expected[i]),
                    Float.floatToRawIntBits(actual[i]),
                    where + " at " + i + ": " + expected[i] + " against " + actual[i]);
        }
    }
}
