package dev.aule.cpu.vector;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Element-wise SIMD math of a tile: exp and tanh as polynomials (no scalar fallback per lane), scaling,
 * softcap, ALiBi, and the backward's softmax step over a transposed tile.
 */
public final class Elementwise {
    private static final VectorSpecies<Float> F = SimdWidth.F;
    private static final VectorSpecies<Integer> I = SimdWidth.I;
    private static final int L = SimdWidth.L;
    private static final int KT = SimdWidth.KT;

    // exp(x) = 2^n * e^r with n = round(x / ln 2) and |r| <= ln(2) / 2.
    private static final float LOG2E = 1.44269504f;
    private static final float LN2_HI = 0.693145752f; // ln 2 split so n * LN2_HI is exact
    private static final float LN2_LO = 1.42860677e-6f;
    private static final float ROUNDER = 12582912f; // 1.5 * 2^23: adding it rounds to an integer
    private static final int ROUNDER_BITS = Float.floatToRawIntBits(ROUNDER);
    private static final float EXP_MIN = -87.0f; // below: 0 (avoids subnormal scale factors)
    private static final float EXP_MAX = 88.0f;
    private static final FloatVector IOTA = iota(); // 0, 1, ..., L-1
    private static final FloatVector NEG_LN2_HI = FloatVector.broadcast(F, -LN2_HI);
    private static final FloatVector NEG_LN2_LO = FloatVector.broadcast(F, -LN2_LO);
    private static final FloatVector ONE = FloatVector.broadcast(F, 1f);
    private static final FloatVector C2 = FloatVector.broadcast(F, 1f / 2);
    private static final FloatVector C3 = FloatVector.broadcast(F, 1f / 6);
    private static final FloatVector C4 = FloatVector.broadcast(F, 1f / 24);
    private static final FloatVector C5 = FloatVector.broadcast(F, 1f / 120);
    private static final FloatVector C6 = FloatVector.broadcast(F, 1f / 720);
    // Taylor coefficients of tanh: y - y^3/3 + 2y^5/15 - 17y^7/315 + ...
    private static final FloatVector T3 = FloatVector.broadcast(F, -1f / 3);
    private static final FloatVector T5 = FloatVector.broadcast(F, 2f / 15);
    private static final FloatVector T7 = FloatVector.broadcast(F, -17f / 315);
    private static final FloatVector T9 = FloatVector.broadcast(F, 62f / 2835);
    private static final FloatVector T11 = FloatVector.broadcast(F, -1382f / 155925);
    private static final FloatVector T13 = FloatVector.broadcast(F, 21844f / 6081075);

    private Elementwise() {}

    /** {@code x[off, off+n) *= factor}. */
    public static void scale(float[] x, int off, int n, float factor) {
        int i = off;
        for (int end = off + F.loopBound(n); i < end; i += L) {
            FloatVector.fromArray(F, x, i).mul(factor).intoArray(x, i);
        }
        for (; i < off + n; i++) {
            x[i] *= factor;
        }
    }

    /** {@code dst[dstOff + i] = src[srcOff + i] * factor} for {@code i < n}. */
    public static void scaleTo(float[] src, int srcOff, int n, float factor, float[] dst, int dstOff) {
        int i = 0;
        for (int end = F.loopBound(n); i < end; i += L) {
            FloatVector.fromArray(F, src, srcOff + i).mul(factor).intoArray(dst, dstOff + i);
        }
        for (; i < n; i++) {
            dst[dstOff + i] = src[srcOff + i] * factor;
        }
    }

    /**
     * {@code dst[dstOff + i] += x * src[srcOff + i]} for {@code i < n} (a multiply and an add, not a fused
     * multiply-add, so the sums are those of the scalar loop it replaces: the JIT leaves that loop scalar, as it
     * cannot tell the two arrays apart).
     */
    public static void addScaled(float[] dst, int dstOff, float[] src, int srcOff, int n, float x) {
        int i = 0;
        for (int end = F.loopBound(n); i < end; i += L) {
            FloatVector.fromArray(F, src, srcOff + i)
                    .mul(x)
                    .add(FloatVector.fromArray(F, dst, dstOff + i))
                    .intoArray(dst, dstOff + i);
        }
        for (; i < n; i++) {
            dst[dstOff + i] += x * src[srcOff + i];
        }
    }

    /**
     * {@code s = cap * tanh((scale * s) / cap)} over {@code s[off, off+n)}, {@code n} a multiple of the lanes. A
     * division, not a multiplication by {@code 1 / cap}: that reciprocal overflows for a subnormal cap, and
     * {@code 0 * inf} would turn a zero score into NaN.
     */
    public static void softcap(float[] s, int off, int n, float scale, float cap) {
        for (int i = off; i < off + n; i += L) {
            tanh(FloatVector.fromArray(F, s, i).mul(scale).div(cap)).mul(cap).intoArray(s, i);
        }
    }

    /** {@code s[off + j] -= slope * |center - j|} for {@code j} in {@code [0, n)}: ALiBi's distance penalty. */
    public static void alibi(float[] s, int off, int n, float slope, float center) {
        FloatVector distance = FloatVector.broadcast(F, center).sub(IOTA);
        for (int i = off; i < off + n; i += L) {
            FloatVector.fromArray(F, s, i).sub(distance.abs().mul(slope)).intoArray(s, i);
            distance = distance.sub(L);
        }
    }

    /**
     * Softmax backward over a transposed {@code keys x KT} tile, in place (the contract of
     * {@code TileMath.softmaxBackward}): {@code p} into {@code s}, {@code ds} into {@code dp}.
     */
    public static void softmaxBackward(
            float[] s, float[] dp, int keys, int key0, int rowOff, boolean masked, BackwardRows rows) {
        float[] lse = rows.lse();
        float[] delta = rows.delta();
        int[] first = rows.first();
        int[] last = rows.last();
        float[] diag = rows.diag();
        float cap = rows.softcap();
        float slope = rows.slope();
        float scoreScale = rows.scoreScale();
        // Lane vectors outside, keys inside: each row statistic is loaded once per tile.
        for (int lane = 0; lane < KT; lane += L) {
            int row = rowOff + lane;
            FloatVector rowLse = FloatVector.fromArray(F, lse, row);
            FloatVector rowDelta = FloatVector.fromArray(F, delta, row);
            FloatVector rowDiag = FloatVector.fromArray(F, diag, row);
            IntVector rowFirst = IntVector.fromArray(I, first, row);
            IntVector rowLast = IntVector.fromArray(I, last, row);
            for (int j = 0; j < keys; j++) {
                int at = j * KT + lane;
                int key = key0 + j;
                FloatVector y = FloatVector.fromArray(F, s, at);
                if (scoreScale != 1f) {
                    y = y.mul(scoreScale);
                }
                FloatVector capSlope = ONE;
                if (cap > 0f) {
                    FloatVector th = tanh(y.div(cap));
                    y = th.mul(cap);
                    capSlope = th.mul(th).neg().add(1f);
                }
                if (slope != 0f) {
                    y = y.sub(rowDiag.sub(key).abs().mul(slope));
                }
                // p <= 1 exactly: a score above the rounded LSE (by an ulp of a score of 1e29, say) must not give
                // exp(8e21) = inf, and then inf * 0 = NaN in ds
                FloatVector d = y.sub(rowLse);
                FloatVector p = expNonPositive(d.blend(0f, d.compare(VectorOperators.GT, 0f)));
                FloatVector ds = FloatVector.fromArray(F, dp, at)
                        .sub(rowDelta)
                        .mul(p)
                        .mul(capSlope)
                        .blend(0f, p.compare(VectorOperators.EQ, 0f)); // p = 0 adds nothing, even to a NaN dp
                if (masked) {
                    VectorMask<Float> hidden = rowFirst.compare(VectorOperators.GT, key)
                            .or(rowLast.compare(VectorOperators.LT, key))
                            .cast(F);
                    p = p.blend(0f, hidden);
                    ds = ds.blend(0f, hidden);
                }
                p.intoArray(s, at);
                ds.intoArray(dp, at);
            }
        }
    }

    /**
     * tanh(y). For |y| >= 1/2: sign(y) (1 - e) / (1 + e) with e = exp(-2|y|) <= 1, which cannot
     * overflow. Below 1/2 that form cancels (1 - e is tiny for a tiny y, and a large softcap makes
     * every y tiny), so there the odd Taylor series to y^13 is used: its truncation error is below
     * 1e-7 relative at |y| = 1/2 and shrinks as y^14 below.
     */
    static FloatVector tanh(FloatVector y) {
        FloatVector a = y.abs();
        FloatVector e = expNonPositive(a.mul(-2f)); // -2|y| <= 0 or NaN
        FloatVector large = e.neg().add(1f).div(e.add(1f));
        FloatVector a2 = a.mul(a);
        FloatVector poly = a2.fma(T13, T11);
        poly = poly.fma(a2, T9);
        poly = poly.fma(a2, T7);
        poly = poly.fma(a2, T5);
        poly = poly.fma(a2, T3);
        FloatVector small = poly.mul(a2).fma(a, a);
        FloatVector th = large.blend(small, a.compare(VectorOperators.LT, 0.5f));
        return th.blend(th.neg(), y.compare(VectorOperators.LT, 0f));
    }

    /**
     * e^x, relative error below 3e-7 on [-87, 88]; 0 below, +inf-free above (clamped). The clamps are compares and
     * blends rather than {@code max} and {@code min}, which C2 compiles as five-instruction sequences for Java's NaN
     * and signed-zero rules; a blend keeps a NaN and a signed zero as they are, so the bits are the same.
     */
    static FloatVector exp(FloatVector x) {
        FloatVector xc = x.blend(EXP_MIN, x.compare(VectorOperators.LT, EXP_MIN));
        xc = xc.blend(EXP_MAX, xc.compare(VectorOperators.GT, EXP_MAX));
        return expClamped(x, xc);
    }

    /**
     * {@link #exp} of an {@code x} at most 0 or NaN (scores minus their row max or their LSE), bit for bit, without
     * the clamps: on [EXP_MIN, 0] they change nothing, and below EXP_MIN (-inf included) the result is the final
     * blend's 0 whatever the polynomial made of the unclamped value. A third of the exp's instructions on the
     * softmax's hottest loop.
     */
    static FloatVector expNonPositive(FloatVector x) {
        return expClamped(x, x);
    }

    /** e^xc by the polynomial, 0 where {@code x} is below EXP_MIN; {@code xc} is x or x clamped to the range. */
    private static FloatVector expClamped(FloatVector x, FloatVector xc) {
        FloatVector rounded = xc.fma(LOG2E, ROUNDER);
        FloatVector n = rounded.sub(ROUNDER);
        FloatVector r = n.fma(NEG_LN2_HI, xc);
        r = n.fma(NEG_LN2_LO, r);
        // Degree-6 Taylor polynomial of e^r on |r| <= ln(2)/2 (truncation error < 1.2e-7).
        FloatVector poly = r.fma(C6, C5);
        poly = poly.fma(r, C4);
        poly = poly.fma(r, C3);
        poly = poly.fma(r, C2);
        poly = poly.fma(r, ONE);
        poly = poly.fma(r, ONE);
        IntVector bits = rounded.reinterpretAsInts();
        FloatVector twoToN =
                bits.sub(ROUNDER_BITS - 127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
        VectorMask<Float> underflow = x.compare(VectorOperators.LT, EXP_MIN);
        return poly.mul(twoToN).blend(0f, underflow);
    }

    private static FloatVector iota() {
        float[] lanes = new float[L];
        for (int i = 0; i < L; i++) {
            lanes[i] = i;
        }
        return FloatVector.fromArray(F, lanes, 0);
    }
}
