package dev.aule.models;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/**
 * The Vector API forms of LayerNorm and of the dense layers' bias and residual sums give the bits of their scalar
 * loops, at widths with and without a tail past the last whole vector.
 */
class VectorEpiloguesTest {
    private static final int[] WIDTHS = {384, 768, 21, 3, 8, 1};

    @Test
    void layerNormMatchesTheScalarLoopsBitForBit() {
        Random r = new Random(11);
        for (int width : WIDTHS) {
            int rows = 5;
            float[] x = new float[rows * width];
            for (int i = 0; i < x.length; i++) {
                // An offset and a spread as a residual stream has, so mean and variance both matter.
                x[i] = (float) (3 + 40 * r.nextGaussian());
            }
            float[] gamma = random(r, width);
            float[] beta = random(r, width);
            float[] fast = x.clone();
            float[] four = x.clone();
            float[] eight = x.clone();
            float[] reference = x.clone();
            for (int row = 0; row < rows; row++) {
                Activations.layerNorm(fast, row, width, gamma, beta, 1e-12);
                Activations.vectorLayerNorm(four, row, width, gamma, beta, 1e-12, false);
                Activations.vectorLayerNorm(eight, row, width, gamma, beta, 1e-12, true);
                Activations.scalarLayerNorm(reference, row, width, gamma, beta, 1e-12);
            }
            assertArrayEquals(reference, fast, "width " + width);
            assertArrayEquals(reference, four, "width " + width + ", 4 double lanes");
            assertArrayEquals(reference, eight, "width " + width + ", 8 double lanes");
        }
    }

    @Test
    void biasAndResidualSumsMatchScalarAddsBitForBit() {
        Random r = new Random(12);
        for (int width : WIDTHS) {
            int stride = width + 7;
            int c0 = 5;
            int rows = 3;
            float[] y = random(r, rows * stride + c0);
            float[] residual = random(r, y.length);
            float[] bias = random(r, c0 + width);
            float[] biased = y.clone();
            float[] summed = residual.clone();
            Epilogues.addBias(biased, 1, 2, stride, c0, width, bias);
            Epilogues.addResidual(summed, y, 1, 2, stride, c0, width, bias);
            float[] biasedRef = y.clone();
            float[] summedRef = residual.clone();
            for (int row = 1; row < 3; row++) {
                for (int j = 0; j < width; j++) {
                    int i = row * stride + c0 + j;
                    biasedRef[i] = y[i] + bias[c0 + j];
                    summedRef[i] = residual[i] + (y[i] + bias[c0 + j]);
                }
            }
            assertArrayEquals(biasedRef, biased, "bias, width " + width);
            assertArrayEquals(summedRef, summed, "residual, width " + width);
        }
    }

    private static float[] random(Random r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) r.nextGaussian();
        }
        return a;
    }
}
