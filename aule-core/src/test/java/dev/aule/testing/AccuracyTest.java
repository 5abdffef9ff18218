package dev.aule.testing;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.Accuracy;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The one error measure and its tolerances: what {@code aule verify} and every backend's tests judge by. */
class AccuracyTest {
    private static final float NAN = Float.NaN;
    private static final float INF = Float.POSITIVE_INFINITY;

    @Test
    void smallOutputsGetTheAbsoluteErrorLargeOnesTheRelative() {
        assertEquals(0.25, Accuracy.relativeError(row(0.5f, 0.25f), row(0.5f, 0.5f)), 1e-12);
        // max|ref| = 4, so the largest difference (2) counts a quarter of its size
        assertEquals(0.5, Accuracy.relativeError(row(2f, -4f), row(4f, -4f)), 1e-12);
        assertEquals(0, Accuracy.relativeError(row(1f, -3f), row(1f, -3f)));
    }

    @Test
    void aNaNWhereTheReferenceHoldsANumberIsAnInfiniteError() {
        assertEquals(INF, Accuracy.relativeError(row(NAN, 1f), row(0f, 1f)));
        assertEquals(INF, Accuracy.relativeError(row(0f, 1f), row(NAN, 1f)));
        assertFalse(Accuracy.within(Accuracy.relativeError(row(NAN), row(0f)), Double.MAX_VALUE));
    }

    @Test
    void aNaNMatchedByTheReferenceCountsNoError() {
        assertEquals(0.5, Accuracy.relativeError(row(NAN, 0.5f), row(NAN, 0f)), 1e-12);
    }

    @Test
    void infinitiesMustMatchExactly() {
        assertEquals(0, Accuracy.relativeError(row(-INF, 0.5f), row(-INF, 0.5f)));
        assertEquals(INF, Accuracy.relativeError(row(INF), row(-INF)));
        assertEquals(INF, Accuracy.relativeError(row(-INF), row(-1e30f)));
        assertEquals(INF, Accuracy.relativeError(row(0f), row(-INF)));
        assertEquals(INF, Accuracy.relativeError(row(NAN), row(INF)));
    }

    @Test
    void theErrorIsNeverNaN() {
        float[] values = {0f, 1f, -1e30f, NAN, INF, -INF};
        for (float actual : values) {
            for (float expected : values) {
                double error = Accuracy.relativeError(row(actual), row(expected));
                assertFalse(Double.isNaN(error), actual + " against " + expected);
            }
        }
    }

    @Test
    void differentSizesAreRejected() {
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> Accuracy.relativeError(row(1f), row(1f, 2f)));
        assertTrue(e.getMessage().contains("actual, expected"), e.getMessage());
    }

    @Test
    void withinIsStrict() {
        assertTrue(Accuracy.within(0.99e-5, Accuracy.F32_TOLERANCE));
        assertFalse(Accuracy.within(1e-5, Accuracy.F32_TOLERANCE));
        assertFalse(Accuracy.within(Double.POSITIVE_INFINITY, Accuracy.F32_TOLERANCE));
        assertFalse(Accuracy.within(Double.NaN, Accuracy.F32_TOLERANCE));
    }

    @Test
    void toleranceByStoredType() {
        assertEquals(1e-5, Accuracy.tolerance(DType.F32));
        assertEquals(1e-2, Accuracy.tolerance(DType.F16));
        assertEquals(1e-2, Accuracy.tolerance(DType.BF16));
        assertEquals(1e-5, Accuracy.LSE_TOLERANCE);
    }

    @Test
    void theF32LimitWidensOnlyForLargeLogits() {
        // one row each of norm 2 (q) and 3 (k): the logit bound is |scale| * 6
        Tensor q = Tensor.of(new float[] {2f, 0f, 0f, 0f}, 1, 1, 1, 4);
        Tensor k = Tensor.of(new float[] {0f, 3f, 0f, 0f}, 1, 1, 1, 4);
        AttentionOptions small = AttentionOptions.builder().scale(1f).build();
        AttentionOptions large = AttentionOptions.builder().scale(1e3f).build();
        assertEquals(6, Accuracy.logitBound(q, k, small), 1e-9);
        assertEquals(1e-5, Accuracy.forwardTolerance(DType.F32, q, k, small));
        assertEquals(6e3 * Math.ulp(1f), Accuracy.forwardTolerance(DType.F32, q, k, large), 1e-12);
        assertEquals(1e-2, Accuracy.forwardTolerance(DType.BF16, q, k, large));
        // ALiBi adds max|slope| * (Sq + Sk)
        AttentionOptions alibi = AttentionOptions.builder()
                .scale(1f)
                .alibiSlopes(new float[] {-0.5f})
                .build();
        assertEquals(7, Accuracy.logitBound(q, k, alibi), 1e-9);
    }

    private static Tensor row(float... values) {
        return Tensor.of(values.clone(), 1, 1, values.length, 1);
    }
}
