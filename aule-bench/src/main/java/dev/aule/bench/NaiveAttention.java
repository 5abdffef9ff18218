package dev.aule.bench;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.util.stream.IntStream;

/**
 * The peer most Java engines are today: attention the naive way, with the whole {@code Sq x Sk}
 * score matrix of a head materialised, then softmax, then probabilities times values. Vectorised
 * (one SIMD dot product per score, one SIMD axpy per value row) and parallel over heads, so the
 * comparison is with a fair naive implementation, not a scalar one. Causal masking skips the
 * masked scores. BHSD F32 arrays, Hq == Hkv, D == Dv.
 */
final class NaiveAttention {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;

    private NaiveAttention() {}

    static void forward(float[] q, float[] k, float[] v, float[] out, int heads, int seq, int d, boolean causal) {
        float scale = (float) (1 / Math.sqrt(d));
        IntStream.range(0, heads).parallel().forEach(h -> {
            int base = h * seq * d;
            float[] scores = new float[seq * seq]; // the O(N^2) buffer naive engines allocate
            for (int i = 0; i < seq; i++) {
                int visible = causal ? i + 1 : seq;
                float max = Float.NEGATIVE_INFINITY;
                for (int j = 0; j < visible; j++) {
                    float s = scale * dot(q, base + i * d, k, base + j * d, d);
                    scores[i * seq + j] = s;
                    max = Math.max(max, s);
                }
                float sum = 0;
                for (int j = 0; j < visible; j++) {
                    float e = (float) Math.exp(scores[i * seq + j] - max);
                    scores[i * seq + j] = e;
                    sum += e;
                }
                int o = base + i * d;
                java.util.Arrays.fill(out, o, o + d, 0f);
                for (int j = 0; j < visible; j++) {
                    axpy(scores[i * seq + j] / sum, v, base + j * d, out, o, d);
                }
            }
        });
    }

    private static float dot(float[] a, int ia, float[] b, int ib, int n) {
        FloatVector acc = FloatVector.zero(F);
        int x = 0;
        for (int bound = F.loopBound(n); x < bound; x += F.length()) {
            acc = FloatVector.fromArray(F, a, ia + x).fma(FloatVector.fromArray(F, b, ib + x), acc);
        }
        float sum = acc.reduceLanes(VectorOperators.ADD);
        for (; x < n; x++) {
            sum += a[ia + x] * b[ib + x];
        }
        return sum;
    }

    private static void axpy(float alpha, float[] x, int ix, float[] y, int iy, int n) {
        int i = 0;
        for (int bound = F.loopBound(n); i < bound; i += F.length()) {
            FloatVector.fromArray(F, x, ix + i)
                    .fma(alpha, 0f)
                    .add(FloatVector.fromArray(F, y, iy + i))
                    .intoArray(y, iy + i);
        }
        for (; i < n; i++) {
            y[iy + i] += alpha * x[ix + i];
        }
    }
}
