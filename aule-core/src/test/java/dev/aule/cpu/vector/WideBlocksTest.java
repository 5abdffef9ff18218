package dev.aule.cpu.vector;

import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link WideBlocks#run} against the online-softmax step computed in float64 from the same float scores (the score
 * product's own bits, {@link Products#multiply}): the new max exactly, alpha, the sums and the outputs to within
 * float rounding; rows outside the range untouched; a NaN score or an infinite max refused.
 */
class WideBlocksTest {
    private static final int KT = SimdWidth.keyTile();
    private static final int L = SimdWidth.lanes();

    @Test
    void oneStepOverSeveralPanelsMatchesFloat64() {
        SplittableRandom rnd = new SplittableRandom(41);
        for (int d : new int[] {8, 32, 64}) {
            for (int panels : new int[] {2, 3, 8}) {
                for (int rows : new int[] {4, 12, 24, 28, 52}) {
                    for (int from : new int[] {0, 4}) {
                        if (from < rows) {
                            check(rnd, d, d, panels, from, rows);
                        }
                    }
                }
            }
        }
        check(rnd, 16, 40, 4, 0, 24); // value rows of another width than the queries
    }

    private static void check(SplittableRandom rnd, int d, int dv, int panels, int from, int rows) {
        int dvp = (dv + L - 1) / L * L;
        int keys = panels * KT;
        float[] q = random(rnd, rows * d, 1.5f);
        float[] panel = random(rnd, 5 + panels * d * KT, 1.5f);
        float[] v = new float[7 + keys * dvp];
        for (int j = 0; j < keys; j++) {
            for (int x = 0; x < dv; x++) {
                v[7 + j * dvp + x] = (float) (rnd.nextDouble() * 2 - 1);
            }
        }
        float[] o = random(rnd, rows * dvp, 1f);
        float[] m = new float[rows];
        float[] l = new float[rows];
        for (int t = 0; t < rows; t++) {
            // A first block (-inf, no sum yet), a max no score passes, and one the block moves.
            m[t] = t % 3 == 0 ? Float.NEGATIVE_INFINITY : t % 3 == 1 ? 40f : -2f;
            l[t] = t % 3 == 0 ? 0f : 3f + t;
            if (t % 3 == 0) {
                Arrays.fill(o, t * dvp, (t + 1) * dvp, 0f);
            }
        }
        float[] scores = new float[rows * KT * panels];
        for (int i = 0; i < panels; i++) {
            Products.multiply(q, 0, d, rows, d, panel, 5 + i * d * KT, scores, i * KT, keys, false);
        }
        float[] m0 = m.clone();
        float[] l0 = l.clone();
        float[] o0 = o.clone();
        float[] alpha = new float[rows];
        float[] ones = new float[rows];
        Arrays.fill(ones, 1f);
        float[] s = new float[WideBlocks.GROUP_ROWS * panels * KT];
        assertTrue(
                WideBlocks.run(q, d, d, from, rows, panel, 5, panels, v, 7, dvp, dvp, s, o, m, l, alpha, ones, null));
        String where = "d " + d + " dv " + dv + " panels " + panels + " rows [" + from + ", " + rows + ")";
        for (int t = 0; t < rows; t++) {
            if (t < from) {
                assertEquals(m0[t], m[t], where + " row " + t + " untouched");
                assertEquals(l0[t], l[t], where + " row " + t + " untouched");
                for (int x = 0; x < dvp; x++) {
                    assertEquals(o0[t * dvp + x], o[t * dvp + x], where + " row " + t + " untouched");
                }
                continue;
            }
            float max = m0[t];
            for (int j = 0; j < keys; j++) {
                max = Math.max(max, scores[t * keys + j]);
            }
            assertEquals(max, m[t], where + " max of row " + t);
            float a = m0[t] == max ? 1f : (float) Math.exp(m0[t] - max); // the rescale as the narrow update takes it
            assertEquals(a, alpha[t], where + " alpha of row " + t);
            double sum = l0[t] * a;
            double[] acc = new double[dvp];
            for (int x = 0; x < dvp; x++) {
                acc[x] = o0[t * dvp + x] * a;
            }
            for (int j = 0; j < keys; j++) {
                double p = Math.exp((double) scores[t * keys + j] - max);
                sum += p;
                for (int x = 0; x < dvp; x++) {
                    acc[x] += p * v[7 + j * dvp + x];
                }
            }
            assertEquals(sum, l[t], 2e-6 * sum, where + " sum of row " + t);
            for (int x = 0; x < dvp; x++) {
                assertEquals(acc[x], o[t * dvp + x], 2e-6 * sum, where + " output " + x + " of row " + t);
            }
        }
    }

    @Test
    void aNaNScoreOrAnInfiniteMaxIsLeftToTheCaller() {
        SplittableRandom rnd = new SplittableRandom(43);
        int d = 32;
        int panels = 2;
        int rows = 8;
        int dvp = 32;
        for (float poison : new float[] {Float.NaN, Float.POSITIVE_INFINITY}) {
            float[] q = random(rnd, rows * d, 1f);
            for (int t = 0; t < rows; t++) {
                q[t * d + 3] = 1f; // so that every row's score of the poisoned key is the poison itself
            }
            float[] panel = random(rnd, panels * d * KT, 1f);
            panel[(d * KT) + 3 * KT + 5] = poison; // row x = 3 of the second panel, key 5: every row's score is poison
            float[] v = random(rnd, panels * KT * dvp, 1f);
            float[] m = new float[rows];
            Arrays.fill(m, Float.NEGATIVE_INFINITY);
            float[] ones = new float[rows];
            Arrays.fill(ones, 1f);
            boolean done = WideBlocks.run(
                    q,
                    d,
                    d,
                    0,
                    rows,
                    panel,
                    0,
                    panels,
                    v,
                    0,
                    dvp,
                    dvp,
                    new float[WideBlocks.GROUP_ROWS * panels * KT],
                    new float[rows * dvp],
                    m,
                    new float[rows],
                    new float[rows],
                    ones,
                    null);
            assertFalse(done, "poison " + poison);
        }
    }

    private static float[] random(SplittableRandom rnd, int n, float scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) ((rnd.nextDouble() * 2 - 1) * scale);
        }
        return a;
    }
}
