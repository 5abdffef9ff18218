package dev.aule;

import dev.aule.spi.AttentionBackend;
import dev.aule.spi.BackwardInputs;
import dev.aule.testing.Tensors;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A key a row cannot see never changes that row, whatever its key and value rows hold and whatever hides it
 * (semantics rule 10), forward and backward: the same call with the hidden key's NaNs or infinities replaced
 * by zeros gives the same rows, and the rows match the float64 reference.
 */
class HiddenNonFiniteKeysTest {
    private static final int S = 70; // more than one key block on every vector width
    private static final int D = 32;
    private static final int POISONED = 37;
    private static final float[] POISONS = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 3e38f};

    /** An additive bias of -inf on the poisoned key hides it from every row: NaN + -inf must not reach them. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("dev.aule.testing.BackendNames#available")
    void minusInfinityBiasHidesANonFiniteKey(String backend) {
        Tensor bias = Tensor.allocate(DType.F32, 1, 1, S, S);
        for (int i = 0; i < S; i++) {
            bias.set(0, 0, i, POISONED, Float.NEGATIVE_INFINITY);
        }
        AttentionOptions options = AttentionOptions.builder().bias(bias).build();
        for (float poison : POISONS) {
            assertHiddenKeyIgnored(backend, options, poison, 0, S - 1);
        }
    }

    /** Causal hides the poisoned key from the rows above it, in the forward and in dq. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("dev.aule.testing.BackendNames#available")
    void causalHidesANonFiniteKeyFromDq(String backend) {
        AttentionOptions causal = AttentionOptions.builder().causal(true).build();
        for (float poison : POISONS) {
            assertHiddenKeyIgnored(backend, causal, poison, 0, POISONED - 1);
        }
        // softcap takes its own path through the backward's softmax; a dense mask the masks' path
        Tensor bias = Tensor.allocate(DType.F32, 1, 1, S, S);
        AttentionOptions masked =
                AttentionOptions.builder().causal(true).softcap(4f).bias(bias).build();
        assertHiddenKeyIgnored(backend, masked, Float.NaN, 0, POISONED - 1);
    }

    /**
     * Rows {@code [firstRow, lastRow]} cannot see key {@link #POISONED}, whose k and v rows get {@code poison}: their
     * out, lse and dq are finite, equal to the reference's, and equal to the same call with the key's rows set to 0.
     */
    private static void assertHiddenKeyIgnored(
            String backend, AttentionOptions options, float poison, int firstRow, int lastRow) {
        AttentionBackend under = Backends.get(backend);
        SplittableRandom rnd = new SplittableRandom(17);
        Tensor q = Tensors.random(rnd, DType.F32, 1, 2, S, D);
        Tensor k = Tensors.random(rnd, DType.F32, 1, 2, S, D);
        Tensor v = Tensors.random(rnd, DType.F32, 1, 2, S, D);
        Tensor dOut = Tensors.random(rnd, DType.F32, 1, 2, S, D);
        Tensor cleanK = copy(k);
        Tensor cleanV = copy(v);
        for (int h = 0; h < 2; h++) {
            for (int x = 0; x < D; x++) {
                k.set(0, h, POISONED, x, x % 2 == 0 ? poison : 1f);
                v.set(0, h, POISONED, x, x % 3 == 0 ? poison : -1f);
                cleanK.set(0, h, POISONED, x, 0f);
                cleanV.set(0, h, POISONED, x, 0f);
            }
        }
        String what = backend + ", key " + POISONED + " = " + poison + ", " + options;
        Rows poisoned = rows(under, q, k, v, dOut, options, firstRow, lastRow);
        Rows expected = rows(Backends.get("reference"), q, k, v, dOut, options, firstRow, lastRow);
        Rows zeroed = rows(under, q, cleanK, cleanV, dOut, options, firstRow, lastRow);
        for (float[] values : new float[][] {poisoned.out, poisoned.lse, poisoned.dq}) {
            for (float x : values) {
                assertTrue(Float.isFinite(x), what + ": a row that cannot see the key got " + x);
            }
        }
        assertArrayEquals(zeroed.out, poisoned.out, 1e-6f, what + ": out");
        assertArrayEquals(zeroed.lse, poisoned.lse, 1e-6f, what + ": lse");
        assertArrayEquals(zeroed.dq, poisoned.dq, 1e-5f, what + ": dq");
        assertArrayEquals(expected.out, poisoned.out, 1e-5f, what + ": out against the reference");
        assertArrayEquals(expected.dq, poisoned.dq, 1e-4f, what + ": dq against the reference");
    }

    /** out, lse and dq of rows {@code [firstRow, lastRow]} of both heads, flattened. */
    private record Rows(float[] out, float[] lse, float[] dq) {}

    private static Rows rows(
            AttentionBackend backend,
            Tensor q,
            Tensor k,
            Tensor v,
            Tensor dOut,
            AttentionOptions options,
            int firstRow,
            int lastRow) {
        Tensor out = Tensor.allocate(DType.F32, 1, 2, S, D);
        Tensor lse = Tensor.allocate(DType.F32, 1, 2, S, 1);
        backend.forward(q, k, v, out, lse, options);
        Gradients g = new Gradients(copy(q), copy(k), copy(v));
        backend.backward(new BackwardInputs(q, k, v, out, dOut, lse), g, options);
        int n = lastRow - firstRow + 1;
        float[] o = new float[2 * n * D];
        float[] l = new float[2 * n];
        float[] dq = new float[2 * n * D];
        for (int h = 0; h < 2; h++) {
            for (int i = firstRow; i <= lastRow; i++) {
                int row = h * n + i - firstRow;
                l[row] = lse.get(0, h, i, 0);
                for (int x = 0; x < D; x++) {
                    o[row * D + x] = out.get(0, h, i, x);
                    dq[row * D + x] = g.dq().get(0, h, i, x);
                }
            }
        }
        return new Rows(o, l, dq);
    }

    private static Tensor copy(Tensor t) {
        Tensor c = Tensor.allocate(t.dtype(), t.batch(), t.heads(), t.seqLen(), t.headDim());
        for (int h = 0; h < t.heads(); h++) {
            for (int i = 0; i < t.seqLen(); i++) {
                for (int x = 0; x < t.headDim(); x++) {
                    c.set(0, h, i, x, t.get(0, h, i, x));
                }
            }
        }
        return c;
    }
}
