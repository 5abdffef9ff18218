package dev.aule.spi;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Tensor;

/**
 * How a backend is judged against the float64 reference: one error measure and the tolerances it
 * must stay under. {@code aule verify} and the test suites of every backend module use these, so a
 * backend that passes one passes the other.
 *
 * <h2>The error</h2>
 * {@link #relativeError} is {@code max|actual - expected| / max(1, max|expected|)} over every
 * element, in double precision. The divisor makes it an absolute error for outputs of magnitude up
 * to 1 (attention outputs are weighted means of values, log-sum-exps grow with the logits) and a
 * relative one above.
 *
 * <p>Non-finite elements, one rule each:
 * <ul>
 *   <li>NaN where the reference holds a number, or a number where it holds NaN: the error is
 *       infinite. Outputs are poisoned with NaN before a call, so an element the backend never
 *       wrote reads as NaN and fails every tolerance.
 *   <li>NaN where the reference holds NaN: no error (0) for that element.
 *   <li>An infinity: no error when the reference holds the same infinity (the log-sum-exp of a row
 *       that sees no key is {@code -inf}), infinite error otherwise.
 * </ul>
 * The error is therefore never NaN, and any comparison with a tolerance treats a broken element as
 * a failure.
 *
 * <h2>The tolerances</h2>
 * An output stored as F32 must be within {@value #F32_TOLERANCE}; one stored as F16 or BF16 within
 * {@value #HALF_TOLERANCE} (rounding on store alone costs up to {@code 2^-11} and {@code 2^-8}). The
 * log-sum-exp is always F32 and always within {@value #LSE_TOLERANCE}. {@link #forwardTolerance}
 * widens the F32 limit for logits too large for F32 to resolve to {@value #F32_TOLERANCE}.
 */
public final class Accuracy {
    /** The limit for an output stored as F32. */
    public static final double F32_TOLERANCE = 1e-5;
    /** The limit for an output stored as F16 or BF16. */
    public static final double HALF_TOLERANCE = 1e-2;
    /** The limit for the log-sum-exp, which is F32 whatever the output's dtype. */
    public static final double LSE_TOLERANCE = 1e-5;

    private static final double ULP_AT_ONE = Math.ulp(1f); // 2^-23

    private Accuracy() {}

    /**
     * The contract's limit for an output stored as {@code outType}.
     *
     * @param outType the output's storage type
     * @return {@link #F32_TOLERANCE} for F32, {@link #HALF_TOLERANCE} for F16 and BF16
     */
    public static double tolerance(DType outType) {
        return outType == DType.F32 ? F32_TOLERANCE : HALF_TOLERANCE;
    }

    /**
     * The limit for a forward output of {@code outType} computed from these inputs and options.
     *
     * <p>For F32 it is {@link #F32_TOLERANCE} unless the logits are large: rounding a logit of
     * magnitude {@code M} to float already moves it by about {@code M * 2^-24}, and the output moves
     * with it, so with large scales (10, 30) and long head dims no F32 implementation reaches
     * {@value #F32_TOLERANCE} (a plain float loop does no better). The limit is then
     * {@code 2^-23 * M}, with {@code M} the {@link #logitBound}. At default scales it stays at
     * {@value #F32_TOLERANCE}. 16-bit outputs get {@link #HALF_TOLERANCE}.
     *
     * @param outType the output's storage type
     * @param q the call's queries
     * @param k the call's keys
     * @param options the call's options (scale, ALiBi)
     * @return the largest error the output may have against the reference
     */
    public static double forwardTolerance(DType outType, Tensor q, Tensor k, AttentionOptions options) {
        if (outType != DType.F32) {
            return HALF_TOLERANCE;
        }
        return Math.max(F32_TOLERANCE, ULP_AT_ONE * logitBound(q, k, options));
    }

    /**
     * A bound on every logit of the call: {@code |scale| * max|q_i| * max|k_j|} (Cauchy-Schwarz bounds
     * every {@code |scale * q.k|}) plus the largest ALiBi penalty, {@code max|m_h| * (Sq + Sk)}.
     *
     * @param q the call's queries
     * @param k the call's keys
     * @param options the call's options (scale, ALiBi)
     * @return an upper bound of {@code |logit|} over every pair of the call
     */
    public static double logitBound(Tensor q, Tensor k, AttentionOptions options) {
        double bound = Math.abs(options.scale(q.headDim())) * maxRowNorm(q) * maxRowNorm(k);
        if (options.hasAlibi()) {
            double slope = 0;
            for (int b = 0; b < Math.max(1, options.alibiBatches()); b++) {
                for (int h = 0; h < options.alibiHeads(); h++) {
                    slope = Math.max(slope, Math.abs(options.alibiSlope(b, h)));
                }
            }
            bound += slope * (q.seqLen() + k.seqLen());
        }
        return bound;
    }

    /**
     * The contract's error of {@code actual} against {@code expected} (the reference's result):
     * {@code max|actual - expected| / max(1, max|expected|)}, with the non-finite rules of the class
     * description; never NaN.
     *
     * @param actual what the backend under test wrote
     * @param expected what the reference wrote for the same call
     * @return the error, 0 or more, infinite for a non-finite mismatch
     * @throws IllegalArgumentException when the two hold different numbers of elements
     */
    public static double relativeError(Tensor actual, Tensor expected) {
        float[] a = actual.toFloatArray();
        float[] r = expected.toFloatArray();
        if (a.length != r.length) {
            throw new IllegalArgumentException(
                    "actual, expected: must hold as many elements, got " + a.length + " and " + r.length);
        }
        double maxDiff = 0;
        double maxRef = 0;
        for (int i = 0; i < a.length; i++) {
            if (Float.isFinite(a[i]) && Float.isFinite(r[i])) {
                maxDiff = Math.max(maxDiff, Math.abs((double) a[i] - r[i]));
                maxRef = Math.max(maxRef, Math.abs((double) r[i]));
            } else if (!sameNonFinite(a[i], r[i])) {
                return Double.POSITIVE_INFINITY;
            }
        }
        return maxDiff / Math.max(1, maxRef);
    }

    /**
     * Whether an error is within a tolerance; an infinite error never is.
     *
     * @param error a {@link #relativeError}
     * @param tolerance the limit, for example {@link #tolerance(DType)}
     * @return {@code error < tolerance}
     */
    public static boolean within(double error, double tolerance) {
        return error < tolerance;
    }

    /** Both NaN, or the same infinity; called when at least one of them is not finite. */
    private static boolean sameNonFinite(float actual, float expected) {
        return Float.isNaN(actual) ? Float.isNaN(expected) : actual == expected;
    }

    private static double maxRowNorm(Tensor t) {
        float[] row = new float[t.headDim()];
        double max = 0;
        for (int b = 0; b < t.batch(); b++) {
            for (int h = 0; h < t.heads(); h++) {
                for (int s = 0; s < t.seqLen(); s++) {
                    t.readRow(b, h, s, row, 0);
                    double sum = 0;
                    for (float x : row) {
                        sum += (double) x * x;
                    }
                    max = Math.max(max, Math.sqrt(sum));
                }
            }
        }
        return max;
    }
}
