package dev.aule.reference;

import dev.aule.AttentionOptions;
import dev.aule.AttentionShape;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The oracle's gradients against central finite differences of its own float64 forward, for the loss
 * {@code L = sum(out * W)} with random {@code W} (so {@code dOut = W}); and that forward against the
 * reference backend's, so the differences differentiate the contract's semantics.
 */
class BackwardReferenceTest {
    private static final double STEP = 1e-6;

    /** (Hq, Hkv, Sq, Sk, D, Dv) and options; tiny, so every input element gets its own difference. */
    private static final Object[][] CASES = {
            {new int[] {2, 1, 4, 5, 4, 3}, AttentionOptions.defaults()},
            {new int[] {4, 2, 5, 5, 4, 4}, AttentionOptions.builder().causal(true).build()},
            // Sq > Sk causal: the first two rows see no key.
            {new int[] {2, 2, 6, 4, 3, 2}, AttentionOptions.builder().causal(true).build()},
            {new int[] {4, 2, 5, 7, 4, 3}, AttentionOptions.builder().window(1, 2).scale(0.9f).build()},
            {new int[] {2, 1, 4, 4, 4, 4}, AttentionOptions.builder().softcap(0.8f).scale(1.5f).build()},
            {new int[] {4, 2, 3, 6, 2, 5}, AttentionOptions.builder().causal(true)
                    .alibiSlopes(new float[] {0.5f, 0.25f, 1f, 0.1f}).build()},
            {new int[] {4, 1, 5, 6, 3, 3}, AttentionOptions.builder().causal(true).window(2, -1).softcap(1.2f)
                    .alibiSlopes(new float[] {0.3f, 0.2f, 0.1f, 0.7f}).build()},
    };

    @Test
    void gradientsMatchFiniteDifferences() {
        SplittableRandom rnd = new SplittableRandom(5);
        for (Object[] c : CASES) {
            int[] s = (int[]) c[0];
            AttentionOptions options = (AttentionOptions) c[1];
            AttentionShape shape = new AttentionShape(1, s[0], s[1], s[2], s[3], s[4], s[5]);
            ReferenceBackward reference = new ReferenceBackward(shape, options);
            int group = shape.groupSize();
            for (int kvHead = 0; kvHead < shape.kvHeads(); kvHead++) {
                double[][] q = randomRows(rnd, group, shape.queryLen() * shape.headDim());
                double[] k = randomRows(rnd, 1, shape.keyLen() * shape.headDim())[0];
                double[] v = randomRows(rnd, 1, shape.keyLen() * shape.valueDim())[0];
                double[][] w = randomRows(rnd, group, shape.queryLen() * shape.valueDim());
                double[][] dq = new double[group][shape.queryLen() * shape.headDim()];
                double[] dk = new double[k.length];
                double[] dv = new double[v.length];
                reference.backward(0, kvHead, q, k, v, w, dq, dk, dv);

                int head = kvHead;
                Loss loss = () -> dot(reference.forward(0, head, q, k, v), w);
                String where = shape + " " + options + " kv head " + kvHead;
                for (int g = 0; g < group; g++) {
                    assertGradient(where + " dq[" + g + "]", dq[g], q[g], loss);
                }
                assertGradient(where + " dk", dk, k, loss);
                assertGradient(where + " dv", dv, v, loss);
            }
        }
    }

    /** The float64 forward the differences use is the reference backend's forward. */
    @Test
    void itsForwardIsTheReferenceForward() {
        SplittableRandom rnd = new SplittableRandom(9);
        ReferenceBackend backend = new ReferenceBackend();
        for (Object[] c : CASES) {
            int[] s = (int[]) c[0];
            AttentionOptions options = (AttentionOptions) c[1];
            Tensor q = Tensors.random(rnd, DType.F32, 1, s[0], s[2], s[4]);
            Tensor k = Tensors.random(rnd, DType.F32, 1, s[1], s[3], s[4]);
            Tensor v = Tensors.random(rnd, DType.F32, 1, s[1], s[3], s[5]);
            Tensor out = Tensor.allocate(DType.F32, 1, s[0], s[2], s[5]);
            backend.forward(q, k, v, out, null, options);
            AttentionShape shape = AttentionShape.ofInputs(q, k, v, options, backend.capabilities());
            ReferenceBackward reference = new ReferenceBackward(shape, options);
            int group = shape.groupSize();
            for (int kvHead = 0; kvHead < shape.kvHeads(); kvHead++) {
                double[][] qs = new double[group][];
                for (int g = 0; g < group; g++) {
                    qs[g] = head(q, kvHead * group + g);
                }
                double[][] expected = reference.forward(0, kvHead, qs, head(k, kvHead), head(v, kvHead));
                for (int g = 0; g < group; g++) {
                    double[] actual = head(out, kvHead * group + g);
                    for (int x = 0; x < actual.length; x++) {
                        assertEquals(expected[g][x], actual[x], 1e-6, shape + " " + options);
                    }
                }
            }
        }
    }

    private interface Loss {
        double value();
    }

    /** Central differences {@code (L(x + h) - L(x - h)) / 2h} for every element of {@code x}, restored after. */
    private static void assertGradient(String what, double[] gradient, double[] x, Loss loss) {
        for (int i = 0; i < x.length; i++) {
            double saved = x[i];
            x[i] = saved + STEP;
            double up = loss.value();
            x[i] = saved - STEP;
            double down = loss.value();
            x[i] = saved;
            double numeric = (up - down) / (2 * STEP);
            double error = Math.abs(numeric - gradient[i]) / Math.max(1, Math.abs(numeric));
            assertTrue(error < 1e-7, what + " element " + i + ": analytic " + gradient[i] + ", numeric " + numeric);
        }
    }

    private static double dot(double[][] a, double[][] b) {
        double sum = 0;
        for (int g = 0; g < a.length; g++) {
            for (int i = 0; i < a[g].length; i++) {
                sum += a[g][i] * b[g][i];
            }
        }
        return sum;
    }

    private static double[][] randomRows(SplittableRandom rnd, int count, int length) {
        double[][] rows = new double[count][length];
        for (double[] row : rows) {
            for (int i = 0; i < length; i++) {
                row[i] = rnd.nextDouble() * 2 - 1;
            }
        }
        return rows;
    }

    private static double[] head(Tensor t, int h) {
        double[] rows = new double[t.seqLen() * t.headDim()];
        for (int s = 0; s < t.seqLen(); s++) {
            for (int x = 0; x < t.headDim(); x++) {
                rows[s * t.headDim() + x] = t.get(0, h, s, x);
            }
        }
        return rows;
    }
}
