package dev.aule.bench;

import dev.aule.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The peers compute the same attention as the cpu backend (so their timings compare like with like). */
class PeersTest {
    @ParameterizedTest
    @CsvSource({"2, 37, 16, false", "2, 37, 16, true", "3, 70, 64, true", "1, 129, 128, false"})
    void onnxRuntimeMatchesCpu(int heads, int seq, int headDim, boolean causal) {
        Tensor q = Inputs.random(11, 1, heads, seq, headDim);
        Tensor k = Inputs.random(12, 1, heads, seq, headDim);
        Tensor v = Inputs.random(13, 1, heads, seq, headDim);
        try (OnnxAttention ort = new OnnxAttention(
                q.toFloatArray(), k.toFloatArray(), v.toFloatArray(), heads, seq, headDim, causal, 2)) {
            ort.forward();
            PeerCheck.requireEqual("onnxruntime", ort.outputBhsd(), PeerCheck.cpuOutput(q, k, v, causal));
        }
    }

    @ParameterizedTest
    @CsvSource({"2, 37, 16, false", "3, 70, 64, true"})
    void naiveMatchesCpu(int heads, int seq, int headDim, boolean causal) {
        Tensor q = Inputs.random(21, 1, heads, seq, headDim);
        Tensor k = Inputs.random(22, 1, heads, seq, headDim);
        Tensor v = Inputs.random(23, 1, heads, seq, headDim);
        float[] out = new float[heads * seq * headDim];
        java.util.Arrays.fill(out, Float.NaN);
        NaiveAttention.forward(q.toFloatArray(), k.toFloatArray(), v.toFloatArray(), out, heads, seq, headDim, causal);
        PeerCheck.requireEqual("naive", out, PeerCheck.cpuOutput(q, k, v, causal));
    }

    @Test
    void theCheckCatchesADifference() {
        float[] expected = {0.5f, -0.25f, 1f};
        float[] actual = expected.clone();
        actual[1] += 1e-3f;
        IllegalStateException e =
                assertThrows(IllegalStateException.class, () -> PeerCheck.requireEqual("peer", actual, expected));
        assertTrue(e.getMessage().contains("differ at 1"), e.getMessage());
        actual[1] = Float.NaN;
        assertThrows(IllegalStateException.class, () -> PeerCheck.requireEqual("peer", actual, expected));
    }
}
