package dev.aule.cli;

import dev.aule.Tensor;

import java.util.SplittableRandom;

/** Fills tensors with uniform values in [-1, 1): never zeros, which would hide wrong indexing. */
final class RandomFill {
    private RandomFill() {}

    static Tensor fill(Tensor t, SplittableRandom rnd) {
        float[] row = new float[t.headDim()];
        for (int b = 0; b < t.batch(); b++) {
            for (int h = 0; h < t.heads(); h++) {
                for (int s = 0; s < t.seqLen(); s++) {
                    for (int d = 0; d < row.length; d++) {
                        row[d] = (float) (rnd.nextDouble() * 2 - 1);
                    }
                    t.writeRow(b, h, s, row, 0);
                }
            }
        }
        return t;
    }
}
