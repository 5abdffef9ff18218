package dev.aule.reference;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.mask.AttentionMask;
import dev.aule.mask.BlockMask;
import dev.aule.mask.MaskMod;
import dev.aule.mask.ScoreMod;
import dev.aule.spi.AttentionShape;
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
        {
            new int[] {4, 2, 5, 7, 4, 3},
            AttentionOptions.builder().window(1, 2).scale(0.9f).build()
        },
        {
            new int[] {2, 1, 4, 4, 4, 4},
            AttentionOptions.builder().softcap(0.8f).scale(1.5f).build()
        },
        {
            new int[] {4, 2, 3, 6, 2, 5},
            AttentionOptions.builder()
                    .causal(true)
                    .alibiSlopes(new float[] {0.5f, 0.25f, 1f, 0.1f})
                    .build()
        },
        {
            new int[] {4, 1, 5, 6, 3, 3},
            AttentionOptions.builder()
                    .causal(true)
                    .window(2, -1)
                    .softcap(1.2f)
                    .alibiSlopes(new float[] {0.3f, 0.2f, 0.1f, 0.7f})
                    .build()
        },
        // Per-batch ALiBi slopes (batch entry 0's row) with dropout.
        {
            new int[] {4, 2, 5, 7, 4, 3},
            AttentionOptions.builder()
                    .alibiSlopesPerBatch(new float[][] {{0.4f, 0.1f, 0.2f, 0.3f}})
                    .dropout(0.2f, 11)
                    .build()
        },
        // Dropout: a fixed mask of the inputs' positions, so the loss stays smooth; 40 keys cross two groups of 32.
        {
            new int[] {4, 2, 5, 7, 4, 3},
            AttentionOptions.builder().causal(true).dropout(0.3f, 7).build()
        },
        {
            new int[] {2, 1, 6, 40, 4, 3},
            AttentionOptions.builder()
                    .dropout(0.5f, -3)
                    .softcap(1.5f)
                    .alibiSlopes(new float[] {0.2f, 0.1f})
                    .build()
        },
    };

    /**
     * Masks, biases, MaskMods and ScoreMods with their derivatives (and a row left empty). A ScoreMod sees
     * its score rounded to float, so cases with one take a larger step (1e-3: the rounding, about 1e-7 of
     * the score, stays far below the difference) and a looser bound.
     */
    private static final Object[][] MASKED_CASES = {
        {
            new int[] {2, 1, 4, 5, 4, 3},
            AttentionOptions.builder()
                    .mask(AttentionMask.of(
                            new boolean[] {
                                true, false, true, true, false, false, false, false, false, false, true, true, true,
                                false, true, false, true, false, true, true, true, true, true, true, true, false, false,
                                false, false, false, true, false, true, false, true, true, true, false, false, true
                            },
                            1,
                            2,
                            4,
                            5))
                    .build()
        },
        {
            new int[] {4, 2, 5, 5, 4, 4},
            AttentionOptions.builder().causal(true).bias(bias(5, 5)).build()
        },
        {
            new int[] {2, 2, 6, 4, 3, 2},
            AttentionOptions.builder()
                    .blockMask(BlockMask.of((b, h, i, j) -> (i + j + h) % 3 != 0, 1, 2, 6, 4))
                    .build()
        },
        {
            new int[] {2, 1, 4, 4, 4, 4},
            AttentionOptions.builder()
                    .scale(1.5f)
                    .scoreMod(ScoreMod.softcap(0.8f))
                    .build()
        },
        {
            new int[] {4, 2, 5, 7, 4, 3},
            AttentionOptions.builder()
                    .window(2, 3)
                    .maskMod(MaskMod.prefixLm(2))
                    .bias(bias(5, 7))
                    .scoreMod(ScoreMod.withDerivative(
                            (x, b, h, i, j) -> x + 0.3f * (float) Math.sin(x * h),
                            (x, b, h, i, j) -> 1 + 0.3f * h * (float) Math.cos(x * h)))
                    .build()
        },
        {
            new int[] {4, 1, 5, 6, 3, 3},
            AttentionOptions.builder()
                    .softcap(1.2f)
                    .scoreMod(ScoreMod.alibi(new float[] {0.3f, 0.2f, 0.1f, 0.7f}))
                    .build()
        },
    };

    @Test
    void gradientsMatchFiniteDifferences() {
        checkFiniteDifferences(CASES);
    }

    @Test
    void maskedGradientsMatchFiniteDifferences() {
        checkFiniteDifferences(MASKED_CASES);
    }

    private static void checkFiniteDifferences(Object[][] cases) {
        SplittableRandom rnd = new SplittableRandom(5);
        for (Object[] c : cases) {
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
                boolean rounded = options.scoreMod() != null;
                double step = rounded ? 1e-3 : STEP;
                double bound = rounded ? 1e-3 : 1e-7;
                for (int g = 0; g < group; g++) {
                    assertGradient(where + " dq[" + g + "]", dq[g], q[g], loss, step, bound);
                }
                assertGradient(where + " dk", dk, k, loss, step, bound);
                assertGradient(where + " dv", dv, v, loss, step, bound);
            }
        }
    }

    /** The float64 forward the differences use is the reference backend's forward. */
    @Test
    void itsForwardIsTheReferenceForward() {
        SplittableRandom rnd = new SplittableRandom(9);
        ReferenceBackend backend = new ReferenceBackend();
        for (Object[] c : java.util.stream.Stream.concat(
                        java.util.Arrays.stream(CASES), java.util.Arrays.stream(MASKED_CASES))
                .toList()) {
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
    private static void assertGradient(
            String what, double[] gradient, double[] x, Loss loss, double step, double bound) {
        for (int i = 0; i < x.length; i++) {
            double saved = x[i];
            x[i] = saved + step;
            double up = loss.value();
            x[i] = saved - step;
            double down = loss.value();
            x[i] = saved;
            double numeric = (up - down) / (2 * step);
            double error = Math.abs(numeric - gradient[i]) / Math.max(1, Math.abs(numeric));
            assertTrue(error < bound, what + " element " + i + ": analytic " + gradient[i] + ", numeric " + numeric);
        }
    }

    /** A fixed F32 bias [1, 1, sq, sk] with values in [-1, 1) and one -inf (a masked pair). */
    private static Tensor bias(int sq, int sk) {
        Tensor t = Tensors.random(new SplittableRandom(sq * 31L + sk), DType.F32, 1, 1, sq, sk);
        t.set(0, 0, sq - 1, 0, Float.NEGATIVE_INFINITY);
        return t;
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
