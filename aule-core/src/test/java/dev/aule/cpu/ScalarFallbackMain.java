package dev.aule.cpu;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.Accuracy;
import dev.aule.spi.AttentionBackend;
import dev.aule.testing.Tensors;

import java.util.SplittableRandom;

/**
 * Run by {@link ScalarFallbackTest} in a JVM started without {@code --add-modules jdk.incubator.vector}:
 * gets the cpu backend, checks it runs the scalar path, and calls forward several times (through
 * {@link Backends} and a fresh instance) against the reference. Prints OK, or exits with status 1.
 */
public final class ScalarFallbackMain {
    private ScalarFallbackMain() {}

    public static void main(String[] args) {
        AttentionBackend cpu = Backends.get("cpu");
        if (((CpuBackend) cpu).simd()) {
            fail("the cpu backend claims SIMD without the Vector API module");
        }
        if (!cpu.availability().available()) {
            fail("the cpu backend must stay available on the scalar path");
        }
        SplittableRandom rnd = new SplittableRandom(12);
        AttentionBackend[] calls = {cpu, cpu, new CpuBackend()};
        for (int call = 0; call < calls.length; call++) {
            Tensor q = Tensors.random(rnd, DType.F32, 1, 4, 70, 40);
            Tensor k = Tensors.random(rnd, DType.BF16, 1, 2, 90, 40);
            Tensor v = Tensors.random(rnd, DType.F32, 1, 2, 90, 24);
            AttentionOptions options = AttentionOptions.builder()
                    .causal(call != 1)
                    .softcap(call == 2 ? 10f : 0f)
                    .build();
            Tensor out = Tensor.allocate(DType.F32, 1, 4, 70, 24);
            Tensor ref = Tensor.allocate(DType.F32, 1, 4, 70, 24);
            out.fill(Float.NaN);
            calls[call].forward(q, k, v, out, null, options);
            Backends.get("reference").forward(q, k, v, ref, null, options);
            double err = Accuracy.relativeError(out, ref);
            if (!(err < 1e-5)) {
                fail("call " + call + " (" + options + "): error " + err);
            }
        }
        System.out.println("OK " + cpu.description());
    }

    private static void fail(String message) {
        System.out.println("FAILED " + message);
        System.exit(1);
    }
}
