package dev.aule.cpu;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.testing.Tensors;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Run by {@link ReproducibilityTest} in a fresh JVM: the same two small forwards (one decode query
 * per head against 600 keys at scale 10, and a causal softcapped prefill of 70 queries) many
 * times, from the first, cold call on. Prints {@code STABLE} when
 * every call gave the bits of the first, else {@code CHANGED} with the first call that differed.
 *
 * <p>Usage: {@code RepeatedForwardMain <calls>}
 */
public final class RepeatedForwardMain {
    private RepeatedForwardMain() {}

    public static void main(String[] args) {
        int calls = Integer.parseInt(args[0]);
        SplittableRandom rnd = new SplittableRandom(2024);
        Tensor q = Tensors.random(rnd, DType.F32, 1, 4, 1, 64);
        Tensor k = Tensors.random(rnd, DType.F32, 1, 1, 600, 64);
        Tensor v = Tensors.random(rnd, DType.F32, 1, 1, 600, 64);
        AttentionOptions options = AttentionOptions.builder().scale(10f).build();
        Tensor prefillQ = Tensors.random(rnd, DType.F32, 1, 4, 70, 64);
        AttentionOptions prefill =
                AttentionOptions.builder().causal(true).softcap(5f).build();
        float[] first = null;
        for (int call = 0; call < calls; call++) {
            Tensor out = Tensor.allocate(DType.F32, 1, 4, 1, 64);
            Tensor prefillOut = Tensor.allocate(DType.F32, 1, 4, 70, 64);
            Backends.get("cpu").forward(q, k, v, out, null, options);
            Backends.get("cpu").forward(prefillQ, k, v, prefillOut, null, prefill);
            float[] decoded = out.toFloatArray();
            float[] now = Arrays.copyOf(decoded, decoded.length + (int) prefillOut.elementCount());
            System.arraycopy(prefillOut.toFloatArray(), 0, now, decoded.length, (int) prefillOut.elementCount());
            if (first == null) {
                first = now;
            } else if (!Arrays.equals(first, now)) {
                for (int i = 0; i < now.length; i++) {
                    if (Float.floatToRawIntBits(now[i]) != Float.floatToRawIntBits(first[i])) {
                        System.out.println("CHANGED at call " + call + ": out[" + i + "] = " + now[i] + ", first call "
                                + first[i]);
                        return;
                    }
                }
            }
        }
        System.out.println("STABLE over " + calls + " calls");
    }
}
