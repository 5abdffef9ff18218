package dev.aule.cpu.vector;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The SIMD exp and tanh against {@link Math} over their whole range, tiny arguments included. */
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
}
