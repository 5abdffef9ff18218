package dev.aule.bench;

import dev.aule.DType;
import dev.aule.Tensor;

import java.util.SplittableRandom;

/** Random benchmark inputs: uniform in [-1, 1), seeded so every run times the same data. */
final class Inputs {
    private Inputs() {}

    static Tensor random(long seed, int batch, int heads, int seq, int dim) {
        SplittableRandom rnd = new SplittableRandom(seed);
        float[] data = new float[batch * heads * seq * dim];
        for (int i = 0; i < data.length; i++) {
            data[i] = (float) (rnd.nextDouble() * 2 - 1);
        }
        return Tensor.of(data, batch, heads, seq, dim);
    }

    static Tensor zeros(int batch, int heads, int seq, int dim) {
        return Tensor.allocate(DType.F32, batch, heads, seq, dim);
    }
}
