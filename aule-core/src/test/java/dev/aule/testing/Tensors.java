package dev.aule.testing;

import dev.aule.DType;
import dev.aule.Tensor;

import java.util.SplittableRandom;

/** Test data. */
public final class Tensors {
    private Tensors() {}

    /** A BHSD tensor of the dtype filled with uniform values in [-1, 1) (never zeros). */
    public static Tensor random(SplittableRandom rnd, DType dtype, int b, int h, int s, int d) {
        Tensor t = Tensor.allocate(dtype, b, h, s, d);
        fillRandom(rnd, t);
        return t;
    }

    public static void fillRandom(SplittableRandom rnd, Tensor t) {
        for (int b = 0; b < t.batch(); b++) {
            for (int h = 0; h < t.heads(); h++) {
                for (int s = 0; s < t.seqLen(); s++) {
                    for (int d = 0; d < t.headDim(); d++) {
                        t.set(b, h, s, d, (float) (rnd.nextDouble() * 2 - 1));
                    }
                }
            }
        }
    }
}
