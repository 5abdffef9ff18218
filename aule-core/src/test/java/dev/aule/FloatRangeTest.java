package dev.aule;

import dev.aule.spi.Accuracy;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.BackwardInputs;
import dev.aule.testing.Tensors;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Finite inputs give finite results wherever the float64 reference's are finite: values near the F32
 * maximum, an extreme scale under a softcap, and scores beyond the float range; ALiBi slopes whose
 * penalty would leave it are refused.
 */
class FloatRangeTest {

    /** Values near the F32 maximum: the output is a convex combination of them, so it cannot overflow. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("dev.aule.testing.BackendNames#available")
    void valuesNearTheFloatMaximumStayFinite(String backend) {
        for (int[] shape : new int[][] {{70, 70}, {1, 3000}, {4, 9000}}) { // prefill, and decode with split keys
            SplittableRandom rnd = new SplittableRandom(shape[1]);
            Tensor q = Tensors.random(rnd, DType.F32, 1, 2, shape[0], 32);
            Tensor k = Tensors.random(rnd, DType.F32, 1, 2, shape[1], 32);
            Tensor v = Tensors.random(rnd, DType.F32, 1, 2, shape[1], 32);
            scaleInPlace(v, 3.3e38f);
            assertMatchesReference(backend, q, k, v, AttentionOptions.defaults(), "v near F32 max " + shape[1]);
            assertMatchesReference(
                    backend, q, k, v, AttentionOptions.builder().causal(true).build(), "causal, v near F32 max");
        }
    }

    /** The cached decode path reads values in place: its accumulator is held to the same bound. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("dev.aule.testing.BackendNames#available")
    void cachedValuesNearTheFloatMaximumStayFinite(String backend) {
        AttentionBackend under = Backends.get(backend);
        SplittableRandom rnd = new SplittableRandom(5);
        Tensor q = Tensors.random(rnd, DType.F32, 2, 4, 1, 64);
        Tensor k = Tensors.random(rnd, DType.F32, 2, 2, 600, 64);
        Tensor v = Tensors.random(rnd, DType.F32, 2, 2, 600, 64);
        scaleInPlace(v, -3.3e38f);
        int[] lens = {600, 333};
        Tensor out = Tensor.allocate(DType.F32, 2, 4, 1, 64);
        Tensor ref = Tensor.allocate(DType.F32, 2, 4, 1, 64);
        under.forwardCached(q, k, v, lens, out, null, AttentionOptions.defaults());
        Backends.get("reference").forwardCached(q, k, v, lens, ref, null, AttentionOptions.defaults());
        assertFinite(out, backend + " cached");
        assertTrue(Accuracy.relativeError(out, ref) < 1e-5, backend + " cached: " + Accuracy.relativeError(out, ref));
    }

    /** With a softcap the tanh saturates: an extreme scale must not overflow the scaled queries into NaN. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("dev.aule.testing.BackendNames#available")
    void extremeScaleUnderASoftcapSaturates(String backend) {
        SplittableRandom rnd = new SplittableRandom(9);
        Tensor q = Tensors.random(rnd, DType.F32, 1, 2, 40, 32);
        Tensor k = Tensors.random(rnd, DType.F32, 1, 2, 40, 32);
        Tensor v = Tensors.random(rnd, DType.F32, 1, 2, 40, 32);
        scaleInPlace(q, 1e4f);
        for (float scale : new float[] {1e36f, 3e38f, -3e38f}) {
            AttentionOptions options =
                    AttentionOptions.builder().scale(scale).softcap(7f).build();
            assertMatchesReference(backend, q, k, v, options, "scale " + scale + " with softcap 7");
            assertBackwardMatchesReference(backend, q, k, v, options, "scale " + scale + " with softcap 7");
        }
    }

    /**
     * A finite q.k beyond the float range scores {@code +inf}: the row saturates on that key (its out is the
     * key's value, as the float64 reference's limit), never NaN.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("dev.aule.testing.BackendNames#available")
    void scoresBeyondTheFloatRangeSaturate(String backend) {
        SplittableRandom rnd = new SplittableRandom(3);
        Tensor q = Tensors.random(rnd, DType.F32, 1, 1, 20, 16);
        Tensor k = Tensors.random(rnd, DType.F32, 1, 1, 100, 16);
        Tensor v = Tensors.random(rnd, DType.F32, 1, 1, 100, 16);
        for (int i = 0; i < 20; i++) {
            for (int x = 0; x < 16; x++) {
                q.set(0, 0, i, x, 1e20f);
            }
        }
        for (int x = 0; x < 16; x++) {
            k.set(0, 0, 77, x, 1e20f); // q.k = 1.6e41 for this key only
        }
        assertMatchesReference(backend, q, k, v, AttentionOptions.defaults(), "one key scoring beyond F32");
    }

    /** A slope whose penalty over the call's distances leaves the float range is refused, nothing written. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("dev.aule.testing.BackendNames#available")
    void alibiSlopesBeyondTheFloatRangeAreRefused(String backend) {
        AttentionBackend under = Backends.get(backend);
        SplittableRandom rnd = new SplittableRandom(4);
        Tensor q = Tensors.random(rnd, DType.F32, 1, 2, 30, 16);
        Tensor k = Tensors.random(rnd, DType.F32, 1, 2, 30, 16);
        Tensor v = Tensors.random(rnd, DType.F32, 1, 2, 30, 16);
        Tensor out = Tensor.allocate(DType.F32, 1, 2, 30, 16);
        out.fill(7f);
        for (float slope : new float[] {-1e37f, 1e37f, -4e28f}) {
            AttentionOptions options = AttentionOptions.builder()
                    .alibiSlopes(new float[] {0.5f, slope})
                    .build();
            IllegalArgumentException e =
                    assertThrows(IllegalArgumentException.class, () -> under.forward(q, k, v, out, null, options));
            assertTrue(e.getMessage().contains("alibiSlopes"), e.getMessage());
            assertEquals(7f, out.get(0, 1, 29, 15));
        }
        // Large but in range: a negative slope that favours the farthest key, finite and right
        AttentionOptions far = AttentionOptions.builder()
                .alibiSlopes(new float[] {-1e3f, -3e28f})
                .build();
        assertMatchesReference(backend, q, k, v, far, "large negative slopes");
    }

    private static void assertMatchesReference(
            String backend, Tensor q, Tensor k, Tensor v, AttentionOptions options, String what) {
        Tensor out = Tensor.allocate(DType.F32, q.batch(), q.heads(), q.seqLen(), v.headDim());
        Tensor lse = Tensor.allocate(DType.F32, q.batch(), q.heads(), q.seqLen(), 1);
        Tensor ref = Tensor.allocate(DType.F32, q.batch(), q.heads(), q.seqLen(), v.headDim());
        Backends.get(backend).forward(q, k, v, out, lse, options);
        Backends.get("reference").forward(q, k, v, ref, null, options);
        assertFinite(out, backend + ", " + what + ": out");
        double error = Accuracy.relativeError(out, ref);
        assertTrue(error < 1e-5, backend + ", " + what + ": error " + error);
    }

    private static void assertBackwardMatchesReference(
            String backend, Tensor q, Tensor k, Tensor v, AttentionOptions options, String what) {
        SplittableRandom rnd = new SplittableRandom(11);
        Tensor dOut = Tensors.random(rnd, DType.F32, q.batch(), q.heads(), q.seqLen(), v.headDim());
        Tensor out = Tensor.allocate(DType.F32, q.batch(), q.heads(), q.seqLen(), v.headDim());
        Tensor lse = Tensor.allocate(DType.F32, q.batch(), q.heads(), q.seqLen(), 1);
        Backends.get("reference").forward(q, k, v, out, lse, options);
        BackwardInputs in = new BackwardInputs(q, k, v, out, dOut, lse);
        Gradients actual = gradients(q, k, v);
        Gradients expected = gradients(q, k, v);
        Backends.get(backend).backward(in, actual, options);
        Backends.get("reference").backward(in, expected, options);
        for (Tensor[] pair :
                new Tensor[][] {{actual.dq(), expected.dq()}, {actual.dk(), expected.dk()}, {actual.dv(), expected.dv()}
                }) {
            assertFinite(pair[0], backend + ", " + what + ": gradient");
            double error = Accuracy.relativeError(pair[0], pair[1]);
            assertTrue(error < 1e-4, backend + ", " + what + ": gradient error " + error);
        }
    }

    private static Gradients gradients(Tensor q, Tensor k, Tensor v) {
        return new Gradients(
                Tensor.allocate(DType.F32, q.batch(), q.heads(), q.seqLen(), q.headDim()),
                Tensor.allocate(DType.F32, k.batch(), k.heads(), k.seqLen(), k.headDim()),
                Tensor.allocate(DType.F32, v.batch(), v.heads(), v.seqLen(), v.headDim()));
    }

    private static void scaleInPlace(Tensor t, float factor) {
        for (int b = 0; b < t.batch(); b++) {
            for (int h = 0; h < t.heads(); h++) {
                for (int i = 0; i < t.seqLen(); i++) {
                    for (int x = 0; x < t.headDim(); x++) {
                        t.set(b, h, i, x, t.get(b, h, i, x) * factor);
                    }
                }
            }
        }
    }

    private static void assertFinite(Tensor t, String what) {
        for (int b = 0; b < t.batch(); b++) {
            for (int h = 0; h < t.heads(); h++) {
                for (int i = 0; i < t.seqLen(); i++) {
                    for (int x = 0; x < t.headDim(); x++) {
                        float value = t.get(b, h, i, x);
                        assertTrue(
                                Float.isFinite(value),
                                what + " [" + b + ", " + h + ", " + i + ", " + x + "] = " + value);
                    }
                }
            }
        }
    }
}
