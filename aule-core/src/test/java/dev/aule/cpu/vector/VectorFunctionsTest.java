package dev.aule.cpu.vector;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The SIMD exp and tanh against {@link Math} over their whole range, tiny arguments included; the clamp-free exp and
 * the blend-based row max and the four-at-once lane sums against the functions they stand in for, bit for bit.
 */
class VectorFunctionsTest {
    private static final VectorSpecies<Float> F = SimdWidth.F;

    @Test
    void expHasARelativeErrorBelow3e7() {
        SplittableRandom rnd = new SplittableRandom(1);
        for (int i = 0; i < 20_000; i++) {
            float x = (float) (rnd.nextDouble() * 175 - 87);
            double want = Math.exp(x);
            double got = Elementwise.exp(FloatVector.broadcast(F, x)).lane(0);
            assertTrue(Math.abs(got - want) <= 3e-7 * want, "exp(" + x + ") = " + got + ", want " + want);
        }
        assertEquals(0f, Elementwise.exp(FloatVector.broadcast(F, -100f)).lane(0));
        assertEquals(
                0f,
                Elementwise.exp(FloatVector.broadcast(F, Float.NEGATIVE_INFINITY))
                        .lane(0));
    }

    /** Relative accuracy matters down to tiny arguments: a softcap c makes the logit c * tanh(s / c). */
    @Test
    void tanhHasARelativeErrorBelow5e7AtEveryMagnitude() {
        SplittableRandom rnd = new SplittableRandom(2);
        for (int i = 0; i < 40_000; i++) {
            double magnitude = Math.pow(10, rnd.nextDouble() * 36 - 32); // 1e-32 .. 1e4
            float y = (float) (rnd.nextBoolean() ? magnitude : -magnitude);
            double want = Math.tanh(y);
            double got = Elementwise.tanh(FloatVector.broadcast(F, y)).lane(0);
            assertTrue(
                    Math.abs(got - want) <= 5e-7 * Math.abs(want) + 1e-45,
                    "tanh(" + y + ") = " + got + ", want " + want);
        }
        assertEquals(0f, Elementwise.tanh(FloatVector.broadcast(F, 0f)).lane(0));
        assertEquals(
                1f,
                Elementwise.tanh(FloatVector.broadcast(F, Float.POSITIVE_INFINITY))
                        .lane(0));
        assertEquals(
                -1f,
                Elementwise.tanh(FloatVector.broadcast(F, Float.NEGATIVE_INFINITY))
                        .lane(0));
    }
    /** Every argument the softmax gives it (at most 0, -inf, NaN, under the underflow bound) gets exp's bits. */
    @Test
    void expOfNonPositiveArgumentsHasTheBitsOfTheClampedExp() {
        SplittableRandom rnd = new SplittableRandom(3);
        float[] special = {
            0f,
            -0f,
            -1e-45f,
            -1e-30f,
            -86.99999f,
            -87f,
            -87.00001f,
            -88f,
            -103f,
            -1e4f,
            -1e30f,
            -Float.MAX_VALUE,
            Float.NEGATIVE_INFINITY,
            Float.NaN
        };
        for (float x : special) {
            assertSameExp(x);
        }
        for (int i = 0; i < 50_000; i++) {
            assertSameExp((float) -(rnd.nextDouble() * 120));
            assertSameExp(-Float.intBitsToFloat(rnd.nextInt() & 0x7fffffff)); // any non-positive bit pattern
        }
    }

    private static void assertSameExp(float x) {
        float want = Elementwise.exp(FloatVector.broadcast(F, x)).lane(0);
        float got = Elementwise.expNonPositive(FloatVector.broadcast(F, x)).lane(0);
        assertEquals(Float.floatToIntBits(want), Float.floatToIntBits(got), "exp(" + x + ")");
    }

    /** The row max by compares and blends: the largest value wherever it lies, NaN over everything, -inf rows. */
    /** The score kernels sum four accumulators at once: each sum must keep {@code sum()}'s bits (its order). */
    @Test
    void fourSumsAtOnceHaveTheBitsOfOneAtATime() {
        SplittableRandom rnd = new SplittableRandom(5);
        int lanes = F.length();
        for (int i = 0; i < 20_000; i++) {
            FloatVector[] v = new FloatVector[4];
            for (int n = 0; n < 4; n++) {
                float[] x = new float[lanes];
                for (int lane = 0; lane < lanes; lane++) {
                    // Magnitudes over many binades, so that any change of order shows in the rounding.
                    x[lane] = (float) ((rnd.nextDouble() * 2 - 1) * Math.pow(2, rnd.nextInt(-20, 20)));
                }
                v[n] = FloatVector.fromArray(F, x, 0);
            }
            FloatVector sums = Reductions.sums(v[0], v[1], v[2], v[3]);
            int[] at = {Reductions.SUM_A, Reductions.SUM_B, Reductions.SUM_C, Reductions.SUM_D};
            for (int n = 0; n < 4; n++) {
                assertEquals(
                        Float.floatToRawIntBits(Reductions.sum(v[n])),
                        Float.floatToRawIntBits(sums.lane(at[n])),
                        "sum " + n + " of " + v[n]);
            }
        }
    }

    @Test
    void rowMaxIsTheLargestValueAndNaNWhenOneIsNaN() {
        SplittableRandom rnd = new SplittableRandom(4);
        int lanes = SimdWidth.L;
        for (int i = 0; i < 5_000; i++) {
            int n = lanes * (1 + rnd.nextInt(8));
            int off = rnd.nextInt(3);
            float[] s = new float[off + n];
            float want = Float.NEGATIVE_INFINITY;
            for (int j = 0; j < n; j++) {
                float x = switch (rnd.nextInt(12)) {
                    case 0 -> Float.NEGATIVE_INFINITY;
                    case 1 -> Float.POSITIVE_INFINITY;
                    case 2 -> rnd.nextInt(40) == 0 ? Float.NaN : -0f;
                    default -> (float) (rnd.nextGaussian() * Math.pow(10, rnd.nextInt(9) - 4));
                };
                s[off + j] = x;
                want = Math.max(want, x);
            }
            float got = Reductions.max(s, off, n);
            if (Float.isNaN(want)) {
                assertTrue(Float.isNaN(got), "NaN in the row");
            } else {
                assertEquals(want, got, 0f, "row max"); // 0 and -0 compare equal here, as the softmax sees them
            }
        }
        assertEquals(Float.NEGATIVE_INFINITY, Reductions.max(new float[] {Float.NEGATIVE_INFINITY}, 0, 0));
        float[] hidden = new float[lanes * 2];
        java.util.Arrays.fill(hidden, Float.NEGATIVE_INFINITY);
        assertEquals(Float.NEGATIVE_INFINITY, Reductions.max(hidden, 0, hidden.length));
    }
}
