package dev.aule.cpu;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.testing.Forwards;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertTrue;

/** Decode shapes with too few tiles for the cores: the key range is split and merged (flash-decoding). */
class SplitKeysTest {
    @Test
    void splitKeyRangesMergeToTheReference() {
        SplittableRandom rnd = new SplittableRandom(11);
        AttentionOptions[] options = {
            AttentionOptions.defaults(),
            AttentionOptions.builder().causal(true).build(),
            AttentionOptions.builder().causal(true).window(700, -1).build(),
            AttentionOptions.builder()
                    .softcap(5f)
                    .alibiSlopes(new float[] {0.01f, 0.02f, 0.05f, 0.1f})
                    .build(),
            AttentionOptions.builder().window(3000, 3000).build(), // the first rows of long splits see nothing
        };
        int[][] shapes = { // {Hq, Hkv, Sq, Sk, D}
            {4, 1, 1, 2500, 64}, {4, 4, 2, 1537, 80}, {4, 2, 3, 4099, 32}, {4, 1, 4, 8192, 16}
        };
        for (int[] s : shapes) {
            for (AttentionOptions option : options) {
                if (option.hasAlibi() && s[0] != 4) {
                    continue;
                }
                Tensor q = Tensors.random(rnd, DType.F32, 1, s[0], s[2], s[4]);
                Tensor k = Tensors.random(rnd, DType.F32, 1, s[1], s[3], s[4]);
                Tensor v = Tensors.random(rnd, DType.F32, 1, s[1], s[3], s[4]);
                Forwards.Errors errors = Forwards.againstReference(
                        new CpuBackend(), (b, out, lse) -> b.forward(q, k, v, out, lse, option), 1, s[0], s[2], s[4]);
                String where = java.util.Arrays.toString(s) + " " + option;
                assertTrue(errors.out() < 1e-5, "out " + where);
                assertTrue(errors.lse() < 1e-5, "lse " + where);
            }
        }
    }
}
