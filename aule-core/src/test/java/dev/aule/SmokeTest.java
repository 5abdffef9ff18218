package dev.aule;

import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertTrue;

class SmokeTest {
    @Test
    void cpuMatchesReference() {
        SplittableRandom rnd = new SplittableRandom(1);
        int[][] shapes = {{1, 2, 2, 17, 33, 64, 64}, {2, 8, 1, 3, 130, 80, 48}, {1, 4, 4, 127, 127, 128, 128}, {1, 1, 1, 1, 1, 1, 1}};
        for (int[] sh : shapes) {
            for (AttentionOptions opt : new AttentionOptions[] {AttentionOptions.defaults(),
                    AttentionOptions.builder().causal(true).build(),
                    AttentionOptions.builder().causal(true).window(5, -1).softcap(3f).build()}) {
                Tensor q = Tensors.random(rnd, DType.F32, sh[0], sh[1], sh[3], sh[5]);
                Tensor k = Tensors.random(rnd, DType.F32, sh[0], sh[2], sh[4], sh[5]);
                Tensor v = Tensors.random(rnd, DType.F32, sh[0], sh[2], sh[4], sh[6]);
                Tensor out = Tensor.allocate(DType.F32, sh[0], sh[1], sh[3], sh[6]);
                Tensor lse = Tensor.allocate(DType.F32, sh[0], sh[1], sh[3], 1);
                Tensor ref = Tensor.allocate(DType.F32, sh[0], sh[1], sh[3], sh[6]);
                Tensor refLse = Tensor.allocate(DType.F32, sh[0], sh[1], sh[3], 1);
                out.fill(Float.NaN);
                Backends.get("cpu").forward(q, k, v, out, lse, opt);
                Backends.get("reference").forward(q, k, v, ref, refLse, opt);
                double err = Tensors.relativeError(out, ref);
                double lerr = Tensors.relativeError(lse, refLse);
                System.out.println(java.util.Arrays.toString(sh) + " " + opt + " err " + err + " lse " + lerr);
                assertTrue(err < 1e-5 && lerr < 1e-5, "err " + err + " lse " + lerr);
            }
        }
    }
}
