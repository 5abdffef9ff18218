package dev.aule.cpu.vector;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The forward's wide key blocks: a tile's online-softmax step over several key panels at once (KT keys each, read
 * from the packed key panels), so that each row's max, its lanes' reductions and the rescale of its output happen
 * once per wide block instead of once per panel.
 *
 * <p>Why: at small head dims each score costs few FMAs ({@code 2 D} in the two products), while a row's softmax
 * bookkeeping per key block (the lanes' max and sum, the scalar rescale, the output rows loaded and stored by P·V)
 * costs the same at every D; at D = 32 and 64-key blocks the fused softmax took more time than the score product.
 *
 * <p>The rows go in groups of {@link #GROUP_ROWS} (two of the score product's 6-row blocks): the group's scores for
 * every panel, its softmax over all of them, then P·V panel by panel, so the scores of a group stay in L1 while the
 * key panels and value rows come from L1 or L2. Scores of panel {@code i} of a group of {@code g} rows lie at
 * {@code s[i g KT + r KT]} for its row {@code r}. Each output element still sums its keys in key order, starting
 * from {@code alpha o}.
 */
public final class WideBlocks {
    private static final VectorSpecies<Float> F = SimdWidth.F;
    private static final int L = SimdWidth.L;
    private static final int KT = SimdWidth.KT;

    /** Rows per group: two 6-row blocks of the score product. */
    public static final int GROUP_ROWS = 24;

    private WideBlocks() {}

    /**
     * Dropout on a wide block's probabilities after the softmax took their sums, as the forward drops them in a
     * narrow block ({@link DropoutMasks#row}): {@code key0} the block's first key, per tile row {@code t} its mask
     * key halves {@code lo[t]} and {@code hi[t]}.
     */
    public record Dropout(int key0, int[] lo, int[] hi, int threshold, float inverse) {}

    /**
     * One wide block for tile rows {@code [from, to)} (multiples of 4): scores {@code q[t] . k} against {@code panels}
     * key panels ({@code [d][KT]} each, panel {@code i} at {@code keys[keyOff + i d KT]}), the online-softmax update of
     * {@code m}, {@code l} and {@code alpha} over all their keys, and {@code o[t] = alpha[t] o[t] + sum_j p[t][j]
     * v[j]} with value row {@code j} at {@code v[vOff + j vStride]}. Every row must see every key of the block.
     * {@code s} holds at least {@code GROUP_ROWS panels KT} floats; {@code ones} at least {@code to} ones; {@code
     * dropout} is null without dropout.
     *
     * @return false, with the rows' state partly updated, when a score is NaN or a row's max is not finite: the
     *     caller then runs the tile again its exact way
     */
    public static boolean run(
            float[] q,
            int qStride,
            int d,
            int from,
            int to,
            float[] keys,
            int keyOff,
            int panels,
            float[] v,
            int vOff,
            int vStride,
            int dvp,
            float[] s,
            float[] o,
            float[] m,
            float[] l,
            float[] alpha,
            float[] ones,
            Dropout dropout) {
        int panelFloats = d * KT;
        for (int g = from; g < to; g += GROUP_ROWS) {
            int rows = Math.min(GROUP_ROWS, to - g);
            int groupFloats = rows * KT;
            for (int i = 0; i < panels; i++) {
                Products.multiply(
                        q,
                        g * qStride,
                        qStride,
                        rows,
                        d,
                        keys,
                        keyOff + i * panelFloats,
                        s,
                        i * groupFloats,
                        KT,
                        false);
            }
            if (!softmax(s, rows, panels, m, l, alpha, g)) {
                return false;
            }
            if (dropout != null) {
                for (int r = 0; r < rows; r++) {
                    int t = g + r;
                    for (int i = 0; i < panels; i++) {
                        DropoutMasks.row(
                                s,
                                i * groupFloats + r * KT,
                                KT,
                                dropout.key0() + i * KT,
                                dropout.lo()[t],
                                dropout.hi()[t],
                                dropout.threshold(),
                                dropout.inverse());
                    }
                }
            }
            for (int i = 0; i < panels; i++) {
                Products.accumulateTile(
                        s,
                        i * groupFloats - g * KT,
                        g,
                        g + rows,
                        KT,
                        v,
                        vOff + i * KT * vStride,
                        vStride,
                        dvp,
                        o,
                        i == 0 ? alpha : ones);
            }
        }
        return true;
    }

    /**
     * The update of the group's rows {@code t0 .. t0 + rows - 1} over all {@code panels} panels of their scores, as
     * {@link Reductions#softmaxRow} does for one panel: the row max over all, {@code alpha = exp(m - mNew)} (1 when
     * the max did not move), the probabilities in place and {@code l = l alpha + sum}.
     */
    private static boolean softmax(float[] s, int rows, int panels, float[] m, float[] l, float[] alpha, int t0) {
        int groupFloats = rows * KT;
        for (int r = 0; r < rows; r++) {
            int t = t0 + r;
            FloatVector max = FloatVector.broadcast(F, Float.NEGATIVE_INFINITY);
            VectorMask<Float> nan = F.maskAll(false);
            for (int i = 0, at = r * KT; i < panels; i++, at += groupFloats) {
                for (int c = at; c < at + KT; c += L) {
                    FloatVector x = FloatVector.fromArray(F, s, c);
                    max = max.blend(x, x.compare(VectorOperators.GT, max));
                    nan = nan.or(x.compare(VectorOperators.NE, x));
                }
            }
            float mOld = m[t];
            float mNew = Math.max(mOld, Reductions.laneMax(max));
            if (nan.anyTrue() || !(Math.abs(mNew) < Float.POSITIVE_INFINITY)) {
                return false;
            }
            float rescale = mNew == mOld ? 1f : (float) Math.exp(mOld - mNew);
            FloatVector sum = FloatVector.zero(F);
            for (int i = 0, at = r * KT; i < panels; i++, at += groupFloats) {
                for (int c = at; c < at + KT; c += L) {
                    FloatVector e = Elementwise.expNonPositive(
                            FloatVector.fromArray(F, s, c).sub(mNew));
                    e.intoArray(s, c);
                    sum = sum.add(e);
                }
            }
            l[t] = l[t] * rescale + Reductions.sum(sum);
            m[t] = mNew;
            alpha[t] = rescale;
        }
        return true;
    }
}
