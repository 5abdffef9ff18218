package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Gradients;
import dev.aule.Tensor;
import dev.aule.spi.Accuracy;
import dev.aule.spi.AttentionBackend;
import dev.aule.testing.BackwardCases;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Numerics at the edges, against the float64 reference: finite values near the float maximum never overflow the
 * output, and a NaN or Inf in a key, value or query row that a row may not see (causal, window) reaches neither
 * that row's output nor its gradients. Small shapes: lavapipe runs these on the CPU.
 */
class ShaderNumericsTest {
    private static final AttentionOptions CAUSAL =
            AttentionOptions.builder().causal(true).build();
    private static final AttentionOptions CAUSAL_WINDOW =
            AttentionOptions.builder().causal(true).window(3, -1).build();

    private final VulkanBackend vulkan = VulkanTestSupport.backend();
    private final AttentionBackend reference = Backends.get("reference");

    /** Values of one sign near the float maximum: an unnormalised sum of them overflows, their mean does not. */
    @Test
    void valuesNearTheFloatMaximumDoNotOverflowTheOutput() {
        SplittableRandom rnd = new SplittableRandom(1);
        for (AttentionOptions options : List.of(AttentionOptions.defaults(), CAUSAL)) {
            Tensor q = Tensors.random(rnd, DType.F32, 1, 2, 20, 16);
            Tensor k = Tensors.random(rnd, DType.F32, 1, 2, 40, 16);
            Tensor v = Tensor.allocate(DType.F32, 1, 2, 40, 16);
            for (int h = 0; h < 2; h++) {
                for (int s = 0; s < 40; s++) {
                    for (int d = 0; d < 16; d++) {
                        v.set(0, h, s, d, (float) (3.0e38 * (0.5 + 0.5 * rnd.nextDouble())));
                    }
                }
            }
            Tensor expected = Tensor.allocate(DType.F32, 1, 2, 20, 16);
            reference.forward(q, k, v, expected, null, options);
            Tensor actual = Tensor.allocate(DType.F32, 1, 2, 20, 16);
            vulkan.forward(q, k, v, actual, null, options);
            double error = Accuracy.relativeError(actual, expected);
            assertTrue(error < 1e-5, options + ": error " + error + ", first out " + actual.get(0, 0, 0, 0));
        }
    }

    /** A NaN key and value row hidden from most rows (the last key under causal, the first one under a window). */
    @Test
    void aHiddenNonFiniteKeyDoesNotReachTheOutput() {
        for (AttentionOptions options : List.of(CAUSAL, CAUSAL_WINDOW)) {
            Tensor[] qkv = poisonedKeys(options);
            Tensor expected = Tensor.allocate(DType.F32, 1, 2, 12, 16);
            reference.forward(qkv[0], qkv[1], qkv[2], expected, null, options);
            Tensor actual = Tensor.allocate(DType.F32, 1, 2, 12, 16);
            vulkan.forward(qkv[0], qkv[1], qkv[2], actual, null, options);
            assertFiniteRowsMatch("out " + options, actual, expected, 1e-5);
        }
    }

    /** dq of the rows that cannot see a NaN/Inf key, and dk, dv of the keys no NaN query row can see. */
    @Test
    void hiddenNonFiniteRowsContributeNothingToGradients() {
        for (AttentionOptions options : List.of(CAUSAL, CAUSAL_WINDOW)) {
            // The NaN key row reaches the rows that see it, and through them every key they see: check dq only.
            Tensor[] keys = poisonedKeys(options);
            Gradients[] g = gradients("keys " + options, keys[0], keys[1], keys[2], options);
            assertFiniteRowsMatch("keys " + options + " dq", g[0].dq(), g[1].dq(), 1e-4);
            // The first query row holds NaN: under causal it sees key 0 only, so dk and dv of the others are finite.
            SplittableRandom rnd = new SplittableRandom(6);
            Tensor q = Tensors.random(rnd, DType.F32, 1, 2, 12, 16);
            for (int d = 0; d < 16; d++) {
                q.set(0, 1, 0, d, Float.NaN);
            }
            Tensor k = Tensors.random(rnd, DType.F32, 1, 2, 12, 16);
            Tensor v = Tensors.random(rnd, DType.F32, 1, 2, 12, 16);
            g = gradients("queries " + options, q, k, v, options);
            assertFiniteRowsMatch("queries " + options + " dq", g[0].dq(), g[1].dq(), 1e-4);
            assertFiniteRowsMatch("queries " + options + " dk", g[0].dk(), g[1].dk(), 1e-4);
            assertFiniteRowsMatch("queries " + options + " dv", g[0].dv(), g[1].dv(), 1e-4);
        }
    }

    /** This backend's gradients and the reference's, on out and LSE from the reference. */
    private Gradients[] gradients(String what, Tensor q, Tensor k, Tensor v, AttentionOptions options) {
        SplittableRandom rnd = new SplittableRandom(what.hashCode());
        Tensor out = Tensor.allocate(DType.F32, 1, 2, 12, 16);
        Tensor lse = Tensor.allocate(DType.F32, 1, 2, 12, 1);
        reference.forward(q, k, v, out, lse, options);
        BackwardCases.Inputs in =
                new BackwardCases.Inputs(q, k, v, out, lse, Tensors.random(rnd, DType.F32, 1, 2, 12, 16));
        Gradients expected = BackwardCases.backward(reference, in, options, DType.F32);
        Gradients actual = BackwardCases.backward(vulkan, in, options, DType.F32);
        return new Gradients[] {actual, expected};
    }

    /**
     * Random q, k, v [1, 2, 12, 16] with a non-finite key row in head 1 that most rows cannot see: causal, the
     * last key (NaN in k, +Inf in v), seen by the last row only; with the window of 3, the first key, seen by the
     * first four rows only.
     */
    private static Tensor[] poisonedKeys(AttentionOptions options) {
        SplittableRandom rnd = new SplittableRandom(5);
        Tensor q = Tensors.random(rnd, DType.F32, 1, 2, 12, 16);
        Tensor k = Tensors.random(rnd, DType.F32, 1, 2, 12, 16);
        Tensor v = Tensors.random(rnd, DType.F32, 1, 2, 12, 16);
        int key = options.windowLeft() >= 0 ? 0 : 11;
        for (int d = 0; d < 16; d++) {
            k.set(0, 1, key, d, Float.NaN);
            v.set(0, 1, key, d, d % 2 == 0 ? Float.POSITIVE_INFINITY : Float.NaN);
        }
        return new Tensor[] {q, k, v};
    }

    /**
     * Every row where the reference is finite is finite here and within {@code bound} (relative to the largest of
     * those rows); more than three rows in four must be such rows, so a test that checks little fails.
     */
    private static void assertFiniteRowsMatch(String what, Tensor actual, Tensor expected, double bound) {
        int d = expected.headDim();
        float[] a = new float[d];
        float[] e = new float[d];
        double scale = 0;
        double worst = 0;
        int rows = 0;
        int checked = 0;
        for (int pass = 0; pass < 2; pass++) {
            for (int h = 0; h < expected.heads(); h++) {
                for (int s = 0; s < expected.seqLen(); s++) {
                    expected.readRow(0, h, s, e, 0);
                    boolean finite = true;
                    for (float x : e) {
                        finite &= Float.isFinite(x);
                    }
                    if (!finite) {
                        continue;
                    }
                    actual.readRow(0, h, s, a, 0);
                    for (int c = 0; c < d; c++) {
                        if (pass == 0) {
                            scale = Math.max(scale, Math.abs(e[c]));
                        } else {
                            double diff = Math.abs((double) a[c] - e[c]);
                            worst = Math.max(worst, Double.isNaN(diff) ? Double.POSITIVE_INFINITY : diff);
                        }
                    }
                    if (pass == 1) {
                        checked++;
                    }
                }
            }
            rows = expected.heads() * expected.seqLen();
        }
        assertTrue(checked * 4 > rows * 3, what + ": only " + checked + " of " + rows + " reference rows are finite");
        double error = worst / Math.max(scale, Double.MIN_NORMAL);
        assertTrue(error < bound, what + ": error " + error + " over the " + checked + " finite rows");
    }
}
