package dev.aule.models;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** erf against known values, and the GEMM against a float64 product, including a width off the panel size. */
class ActivationsTest {
    @Test
    void erfMatchesKnownValues() {
        double[][] known = {
            {0, 0},
            {0.1, 0.1124629160182849},
            {0.5, 0.5204998778130465},
            {1, 0.8427007929497149},
            {1.5, 0.9661051464753108},
            {1.999, 0.9953015566513705},
            {2, 0.9953222650189527},
            {3, 0.9999779095030014},
            {4.5, 0.9999999998033839},
            {7, 1}
        };
        for (double[] k : known) {
            assertEquals(k[1], Activations.erf(k[0]), 1e-14, "erf(" + k[0] + ")");
            assertEquals(-k[1], Activations.erf(-k[0]), 1e-14, "erf(-" + k[0] + ")");
        }
    }

    @Test
    void fastGeluIsWithinTwoFloatUlpsOfTheSeries() {
        int n = 40_003;
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = -12f + 24f * i / (n - 1);
        }
        x[7] = 0f;
        x[8] = -0f;
        x[9] = 1e-30f;
        float[] fast = x.clone();
        // 1..n-1 (odd length from 1): whole vectors, then the scalar tail.
        Activations.apply(BertConfig.Activation.GELU_ERF, fast, 1, n);
        for (int i = 1; i < n; i++) {
            double want = Activations.preciseGelu(x[i]);
            // The vector lanes run their fit in float: at most 0.83e-7 |x| over this sweep (under 2 ulps of x), well
            // within the model's agreement with ONNX Runtime, whose own float erf is of that order too.
            assertEquals(want, fast[i], 1e-7 * Math.abs(x[i]) + 1e-38, "gelu(" + x[i] + ")");
        }
        assertEquals(x[0], fast[0], "outside the range: untouched");
    }

    @Test
    void gemmMatchesFloat64Product() {
        Random random = new Random(7);
        for (int[] shape : new int[][] {{4, 384, 384}, {68, 96, 1152}, {8, 40, 70}, {132, 17, 5}}) {
            int rows = shape[0], k = shape[1], n = shape[2];
            float[] a = new float[rows * k];
            float[] w = new float[k * n];
            for (int i = 0; i < a.length; i++) a[i] = (float) random.nextGaussian();
            for (int i = 0; i < w.length; i++) w[i] = (float) random.nextGaussian();
            float[] c = new float[rows * n];
            Gemm.multiply(a, rows, Gemm.pack(w, k, n), c);
            for (int r = 0; r < rows; r++) {
                for (int j = 0; j < n; j++) {
                    double want = 0;
                    for (int x = 0; x < k; x++) want += (double) a[r * k + x] * w[x * n + j];
                    assertEquals(
                            want,
                            c[r * n + j],
                            1e-5 * Math.sqrt(k) * 4,
                            "c[" + r + "][" + j + "] of " + rows + "x" + k + "x" + n);
                }
            }
        }
    }
}
