package dev.aule.models;

import dev.aule.testing.ForkedJvm;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * GELU gives the same bits whether its vector lanes run compiled or in the interpreter: a value must not change once
 * its caller is compiled (an encoder's first call and its thousandth would differ in the last bits). The interpreter
 * runs the Vector API's Java fallback, the JIT its intrinsics; where those round differently (the vector exp), the
 * two disagree.
 */
class GeluDeterminismTest {
    /** Prints GELU over {@link #inputs()} as the hex of each float's bits, one line. */
    public static final class Dump {
        public static void main(String[] args) {
            float[] x = inputs();
            Activations.apply(BertConfig.Activation.GELU_ERF, x, 0, x.length);
            System.out.println(hex(x));
        }
    }

    static float[] inputs() {
        int n = 4096;
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = -9f + 18f * i / (n - 1);
        }
        return x;
    }

    static String hex(float[] x) {
        StringBuilder sb = new StringBuilder(x.length * 9);
        for (float v : x) {
            sb.append(Integer.toHexString(Float.floatToRawIntBits(v))).append(' ');
        }
        return sb.toString().trim();
    }

    @Test
    void compiledLanesEqualTheInterpretedOnes() throws Exception {
        float[] compiled = inputs();
        float[] warm = inputs();
        for (int i = 0; i < 3000; i++) { // enough calls for C2 to compile the lanes
            System.arraycopy(compiled, 0, warm, 0, warm.length);
            Activations.apply(BertConfig.Activation.GELU_ERF, warm, 0, warm.length);
        }
        ForkedJvm.Result interpreted = ForkedJvm.run(
                List.of("-Xint", "--add-modules", "jdk.incubator.vector"), Dump.class, Duration.ofMinutes(2));
        assertEquals(0, interpreted.exitCode(), interpreted.transcript());
        assertEquals(interpreted.stdout().trim(), hex(warm), "GELU of the interpreter and of compiled code");
    }
}
