package dev.aule.cpu.vector;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

import java.util.ArrayList;
import java.util.List;

/**
 * Row reductions of the online softmax: the row max, and exp-and-sum, each summing lanes in one fixed order so
 * that a result does not change in the last bit between the interpreter and compiled code.
 */
public final class Reductions {
    private static final VectorSpecies<Float> F = SimdWidth.F;
    private static final int L = SimdWidth.L;
    private static final List<VectorShuffle<Float>> HALVING_ROTATIONS = halvingRotations();
    // Lane i takes lane i + n (mod L): sum()'s halving steps for up to 16 lanes.
    private static final VectorShuffle<Float> ROTATE_8 = VectorShuffle.iota(F, 8 % L, 1, true);
    private static final VectorShuffle<Float> ROTATE_4 = VectorShuffle.iota(F, 4 % L, 1, true);
    private static final VectorShuffle<Float> ROTATE_2 = VectorShuffle.iota(F, 2 % L, 1, true);
    private static final VectorShuffle<Float> ROTATE_1 = VectorShuffle.iota(F, 1 % L, 1, true);
    // sums()'s steps: lane i takes lane i ^ n, and the masks of the lanes whose bit L/2 (L/4) is set.
    private static final VectorShuffle<Float> SWAP_HALF = VectorShuffle.fromOp(F, i -> i ^ (L / 2));
    private static final VectorShuffle<Float> SWAP_QUARTER = VectorShuffle.fromOp(F, i -> i ^ Math.max(L / 4, 1));
    private static final VectorShuffle<Float> SWAP_2 = VectorShuffle.fromOp(F, i -> i ^ (2 % L));
    private static final VectorShuffle<Float> SWAP_1 = VectorShuffle.fromOp(F, i -> i ^ 1);
    private static final VectorMask<Float> UPPER_HALF = laneMask(L / 2);
    private static final VectorMask<Float> UPPER_QUARTER = laneMask(Math.max(L / 4, 1));
    // The lanes where sums() leaves the sums of its four vectors.
    static final int SUM_A = 0;
    static final int SUM_B = L / 2;
    static final int SUM_C = L / 4;
    static final int SUM_D = 3 * L / 4;

    private Reductions() {}

    /** Whether every one of {@code s[off, off+n)} is finite, {@code n} a multiple of the lanes. */
    public static boolean allFinite(float[] s, int off, int n) {
        FloatVector check = FloatVector.zero(F); // 0 * x is 0 for a finite x, NaN for NaN and the infinities
        for (int i = off; i < off + n; i += L) {
            check = check.add(FloatVector.fromArray(F, s, i).mul(0f));
        }
        return check.reduceLanes(VectorOperators.ADD) == 0f;
    }

    /**
     * Largest of {@code s[off, off+n)}, {@code n} a multiple of the lanes; NaN when one of them is NaN.
     *
     * <p>A compare and a blend per vector, not {@code FloatVector.max}: C2 compiles {@code max} with Java's rules
     * for NaN and signed zeros as a sequence of five instructions with a long dependency chain (on AVX-512 it
     * made this loop three times slower, and {@code reduceLanes(MAX)} cost as much again per score row). The
     * result is the same number; only which of {@code -0.0} and {@code 0.0} a row of zeros returns may differ,
     * and the softmax cannot tell them apart ({@code x - (-0.0) == x - 0.0}).
     */
    public static float max(float[] s, int off, int n) {
        FloatVector max = FloatVector.broadcast(F, Float.NEGATIVE_INFINITY);
        VectorMask<Float> nan = F.maskAll(false);
        for (int i = off; i < off + n; i += L) {
            FloatVector x = FloatVector.fromArray(F, s, i);
            max = max.blend(x, x.compare(VectorOperators.GT, max));
            nan = nan.or(x.compare(VectorOperators.NE, x));
        }
        if (nan.anyTrue()) {
            return Float.NaN;
        }
        return laneMax(max);
    }

    /** The largest lane of {@code v}, by halving rotations as {@link #sum} adds them; a NaN lane is passed over. */
    static float laneMax(FloatVector v) {
        if (L > 16) {
            for (int i = 0; i < HALVING_ROTATIONS.size(); i++) {
                FloatVector r = v.rearrange(HALVING_ROTATIONS.get(i));
                v = v.blend(r, r.compare(VectorOperators.GT, v));
            }
            return v.lane(0);
        }
        if (L >= 16) {
            FloatVector r = v.rearrange(ROTATE_8);
            v = v.blend(r, r.compare(VectorOperators.GT, v));
        }
        if (L >= 8) {
            FloatVector r = v.rearrange(ROTATE_4);
            v = v.blend(r, r.compare(VectorOperators.GT, v));
        }
        if (L >= 4) {
            FloatVector r = v.rearrange(ROTATE_2);
            v = v.blend(r, r.compare(VectorOperators.GT, v));
        }
        if (L >= 2) {
            FloatVector r = v.rearrange(ROTATE_1);
            v = v.blend(r, r.compare(VectorOperators.GT, v));
        }
        return v.lane(0);
    }

    /**
     * {@code s = exp(s - max)} in place over {@code s[off, off+n)}, {@code n} a multiple of the lanes; returns the
     * sum. {@code -inf} gives 0. {@code max} is at least every one of them (the row max the softmax subtracts), so
     * the exponents are at most 0 or NaN, as {@link Elementwise#expNonPositive} needs.
     */
    public static float expSum(float[] s, int off, int n, float max) {
        FloatVector sum = FloatVector.zero(F);
        for (int i = off; i < off + n; i += L) {
            FloatVector e =
                    Elementwise.expNonPositive(FloatVector.fromArray(F, s, i).sub(max));
            e.intoArray(s, i);
            sum = sum.add(e);
        }
        // sum(sum) written out: this method is inlined into the forward's softmax, where C2 runs out of
        // inlining budget, and a call to sum() left out of line would box its vector argument on
        // the heap for every score row. Same steps and order as sum().
        if (L > 16) {
            return sum(sum);
        }
        if (L >= 16) {
            sum = sum.add(sum.rearrange(ROTATE_8));
        }
        if (L >= 8) {
            sum = sum.add(sum.rearrange(ROTATE_4));
        }
        if (L >= 4) {
            sum = sum.add(sum.rearrange(ROTATE_2));
        }
        if (L >= 2) {
            sum = sum.add(sum.rearrange(ROTATE_1));
        }
        return sum.lane(0);
    }

    /**
     * The online-softmax update of one score row every key of which the row sees, with nothing between the
     * product and the softmax (no softcap, scale pass, ALiBi or mask): with {@code mNew = max(m[t], max(s))},
     * {@code alpha[t] = exp(m[t] - mNew)} (1 when the max did not move), {@code s = exp(s - mNew)} in place and
     * {@code l[t] = l[t] alpha[t] + sum(s)}, {@code m[t] = mNew}; the same operations in the same order as
     * {@link #max} then {@link #expSum}, so the bits are those of the unfused update. Returns false, and changes
     * nothing, when {@code mNew} is not finite (every score {@code -inf}, an overflow, a NaN): the caller's
     * general update handles those rows. {@code n} is a multiple of the lanes.
     */
    public static boolean softmaxRow(float[] s, int off, int n, float[] m, float[] l, float[] alpha, int t) {
        float mOld = m[t];
        float mNew = Math.max(mOld, max(s, off, n));
        if (!(Math.abs(mNew) < Float.POSITIVE_INFINITY)) {
            return false;
        }
        float rescale = mNew == mOld ? 1f : (float) Math.exp(mOld - mNew);
        float sum = expSum(s, off, n, mNew);
        l[t] = l[t] * rescale + sum;
        m[t] = mNew;
        alpha[t] = rescale;
        return true;
    }

    /**
     * The sum of the lanes in one fixed order, halving the vector each step. Not
     * {@code reduceLanes(ADD)}: its order is left to the implementation, and the interpreter's
     * and C2's differ, so the same call would change in the last bit once compiled. The steps are
     * written out with shuffles held in static final fields, which C2 sees as constants: fetched
     * from a list in a loop, the shuffles were not constant, {@code rearrange} and {@code add} fell
     * back to their Java implementations, and every score row allocated vectors on the heap.
     */
    static float sum(FloatVector v) {
        if (L > 16) {
            for (int i = 0; i < HALVING_ROTATIONS.size(); i++) {
                v = v.add(v.rearrange(HALVING_ROTATIONS.get(i)));
            }
            return v.lane(0);
        }
        if (L >= 16) {
            v = v.add(v.rearrange(ROTATE_8));
        }
        if (L >= 8) {
            v = v.add(v.rearrange(ROTATE_4));
        }
        if (L >= 4) {
            v = v.add(v.rearrange(ROTATE_2));
        }
        if (L >= 2) {
            v = v.add(v.rearrange(ROTATE_1));
        }
        return v.lane(0);
    }

    /**
     * The lane sums of four vectors at once, each in {@link #sum}'s order and so with its bits: {@code sum(a)} in lane
     * {@link #SUM_A}, {@code sum(b)} in {@link #SUM_B}, {@code sum(c)} in {@link #SUM_C}, {@code sum(d)} in
     * {@link #SUM_D}. For 4 to 16 lanes.
     */
    static FloatVector sums(FloatVector a, FloatVector b, FloatVector c, FloatVector d) {
        // sum()'s first step adds lane i + L/2 to lane i, and only the lower half goes on; so a's lower half and
        // b's upper half share one vector (lane i ^ L/2 is lane i + L/2 in a's half, i - L/2 in b's, and a + b is
        // b + a in IEEE arithmetic). The second step packs c and d likewise into the quarters a and b left free,
        // and the last steps (L/8 .. 1) halve all four sums together: 20 operations for 16 lanes, against 36 for
        // four sum() calls.
        if (L > 16) {
            return FloatVector.zero(F)
                    .withLane(SUM_A, sum(a))
                    .withLane(SUM_B, sum(b))
                    .withLane(SUM_C, sum(c))
                    .withLane(SUM_D, sum(d));
        }
        FloatVector ab = a.blend(b, UPPER_HALF).add(b.blend(a, UPPER_HALF).rearrange(SWAP_HALF));
        FloatVector cd = c.blend(d, UPPER_HALF).add(d.blend(c, UPPER_HALF).rearrange(SWAP_HALF));
        FloatVector all =
                ab.blend(cd, UPPER_QUARTER).add(cd.blend(ab, UPPER_QUARTER).rearrange(SWAP_QUARTER));
        if (L >= 16) {
            all = all.add(all.rearrange(SWAP_2));
        }
        if (L >= 8) {
            all = all.add(all.rearrange(SWAP_1));
        }
        return all;
    }

    /** The mask of the lanes {@code i} with {@code (i & bit) != 0}. */
    private static VectorMask<Float> laneMask(int bit) {
        boolean[] lanes = new boolean[L];
        for (int i = 0; i < L; i++) {
            lanes[i] = (i & bit) != 0;
        }
        return VectorMask.fromArray(F, lanes, 0);
    }

    /** Rotations by L/2, L/4, ..., 1 lanes, for vectors wider than 16 lanes. */
    private static List<VectorShuffle<Float>> halvingRotations() {
        List<VectorShuffle<Float>> rotations = new ArrayList<>();
        for (int half = L / 2; half > 0; half /= 2) {
            rotations.add(VectorShuffle.iota(F, half, 1, true));
        }
        return List.copyOf(rotations);
    }
}
