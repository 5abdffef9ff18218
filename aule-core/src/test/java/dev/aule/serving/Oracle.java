package dev.aule.serving;

import dev.aule.AttentionOptions;
import dev.aule.AttentionResult;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.Accuracy;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The serving tests' oracle: the float64 reference forward on the logical (contiguous, gathered)
 * keys and values of one sequence, and the comparison of a serving path's rows with it.
 */
final class Oracle {
    private Oracle() {}

    /** Reference attention of q {@code [1, Hq, Sq, D]} against k and v (null: no keys; rows 0 and -inf). */
    static AttentionResult forward(Tensor q, Tensor k, Tensor v, int valueDim, AttentionOptions options) {
        Tensor out = Tensor.allocate(DType.F32, 1, q.heads(), q.seqLen(), valueDim);
        Tensor lse = Tensor.allocate(DType.F32, 1, q.heads(), q.seqLen(), 1);
        if (k == null) {
            lse.fill(Float.NEGATIVE_INFINITY);
        } else {
            Backends.get("reference").forward(q, k, v, out, lse, options);
        }
        return new AttentionResult(out, lse);
    }

    /** A contiguous F32 copy of rows {@code [0, len)} of the given (b, all heads) of {@code t}, or null when empty. */
    static Tensor prefix(Tensor t, int b, int len) {
        if (len == 0) {
            return null;
        }
        return Tensor.of(t.sequence(b, 0, len).toFloatArray(), 1, t.heads(), len, t.headDim());
    }

    /**
     * Asserts that {@code out}/{@code lse} (batch-1 views of one sequence) match {@code ref} within the
     * contract's limit for {@code out}'s dtype (widened for large logits as
     * {@link Accuracy#forwardTolerance} explains).
     */
    static void assertMatches(
            Tensor out, Tensor lse, AttentionResult ref, Tensor q, Tensor k, AttentionOptions options, String where) {
        double limit = k == null ? 1e-5 : Accuracy.forwardTolerance(out.dtype(), q, k, options);
        double outError = Accuracy.relativeError(out, ref.out());
        assertTrue(outError < limit, "out error " + outError + " over " + limit + ": " + where);
        if (lse != null) {
            double lseLimit = k == null ? 1e-5 : Math.max(1e-5, limit);
            double lseError = Accuracy.relativeError(lse, ref.lse());
            assertTrue(
                    lseError < (out.dtype() == DType.F32 ? lseLimit : Math.max(lseLimit, 1e-4)),
                    "lse error " + lseError + ": " + where);
        }
    }

    /**
     * Asserts that rows {@code [from, from + rows)} of batch entry {@code b} in {@code out} and {@code lse} match the
     * reference attention of the same rows of {@code q} against {@code k} and {@code v} (null: no keys).
     */
    static void assertRowsMatch(
            Tensor out,
            Tensor lse,
            Tensor q,
            int b,
            int from,
            int rows,
            Tensor k,
            Tensor v,
            int valueDim,
            AttentionOptions options,
            String where) {
        Tensor qRows = q.sequence(b, from, rows);
        AttentionResult ref = forward(qRows, k, v, valueDim, options);
        assertMatches(out.sequence(b, from, rows), lse.sequence(b, from, rows), ref, qRows, k, options, where);
    }

    /** A BHSD tensor poisoned with NaN: every element a call must write. */
    static Tensor poisoned(DType dtype, int b, int h, int s, int d) {
        Tensor t = Tensor.allocate(dtype, b, h, s, d);
        t.fill(Float.NaN);
        return t;
    }

    /** Whether every element of {@code t} is still NaN (nothing was written). */
    static boolean allNaN(Tensor t) {
        for (float x : t.toFloatArray()) {
            if (!Float.isNaN(x)) {
                return false;
            }
        }
        return true;
    }
}
