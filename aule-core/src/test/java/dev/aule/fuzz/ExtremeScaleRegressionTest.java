package dev.aule.fuzz;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.Accuracy;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Found by {@link ForwardFuzzTest}: a finite scale whose logits pass the F32 range (no softcap, no ALiBi) must
 * still give the reference's finite softmax, or be rejected; the cpu backend returns NaN.
 */
class ExtremeScaleRegressionTest {
    @Test
    void logitsPastTheFloatRangeGiveTheReferenceResult() {
        // scale * q.k = 3e38 * 2 and 3e38 * 1: both overflow F32, the softmax of them is one-hot on key 0.
        Tensor q = Tensor.of(new float[] {1, 1}, 1, 1, 1, 2);
        Tensor k = Tensor.of(new float[] {1, 1, 0.5f, 0.5f}, 1, 1, 2, 2);
        Tensor v = Tensor.of(new float[] {0.25f, -0.5f}, 1, 1, 2, 1);
        AttentionOptions options = AttentionOptions.builder().scale(3e38f).build();
        Tensor ref = Tensor.allocate(DType.F32, 1, 1, 1, 1);
        Tensor out = Tensor.allocate(DType.F32, 1, 1, 1, 1);
        Backends.get("reference").forward(q, k, v, ref, null, options);
        try {
            Backends.get("cpu").forward(q, k, v, out, null, options);
        } catch (IllegalArgumentException e) {
            assertTrue(
                    Contract.names(e.getMessage(), "options.scale") || Contract.names(e.getMessage(), "scale"),
                    e.getMessage());
            return; // a rejection naming the scale is the contract's other outcome
        }
        double error = Accuracy.relativeError(out, ref);
        assertTrue(
                error < Accuracy.forwardTolerance(DType.F32, q, k, options),
                "cpu " + out.get(0, 0, 0, 0) + ", reference " + ref.get(0, 0, 0, 0));
    }
}
