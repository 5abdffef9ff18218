package dev.aule.fuzz;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Found by {@link ForwardFuzzTest}: a non-finite value of a key that causal masking hides from a row must not
 * reach that row (its weight is exactly 0, and {@code 0 * NaN} or {@code 0 * inf} would make the row NaN).
 */
class HiddenValueRegressionTest {
    @ParameterizedTest
    @ValueSource(floats = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY})
    void aValueHiddenByCausalMaskingLeavesTheRowFinite(float hostile) {
        // Sq = Sk = 2, causal: row 0 sees key 0 only; key 1's value is hostile.
        Tensor q = Tensor.of(new float[] {0.5f, -0.25f}, 1, 1, 2, 1);
        Tensor k = Tensor.of(new float[] {0.75f, 0.5f}, 1, 1, 2, 1);
        Tensor v = Tensor.of(new float[] {0.125f, hostile}, 1, 1, 2, 1);
        Tensor out = Tensor.allocate(DType.F32, 1, 1, 2, 1);
        Tensor ref = Tensor.allocate(DType.F32, 1, 1, 2, 1);
        AttentionOptions causal = AttentionOptions.builder().causal(true).build();
        Backends.get("reference").forward(q, k, v, ref, null, causal);
        Backends.get("cpu").forward(q, k, v, out, null, causal);
        assertEquals(0.125f, ref.get(0, 0, 0, 0), "reference row 0");
        assertEquals(0.125f, out.get(0, 0, 0, 0), "cpu row 0 sees only key 0");
    }
}
