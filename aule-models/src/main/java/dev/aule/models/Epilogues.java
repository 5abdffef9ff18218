package dev.aule.models;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The sums a dense layer applies to a block of its product ({@link Linear}): the bias, and the bias with a residual.
 * Each output element is one float add (or two, in the order written), so the Vector API form, used when the Vector
 * API is in the boot layer, gives the bits of the scalar loop; it took a tenth of a small encoder pass as scalar
 * loops.
 */
final class Epilogues {
    private static final boolean VECTOR = VectorApi.PRESENT;

    private Epilogues() {}

    /** {@code y[r * stride + c0 + j] += bias[c0 + j]} for rows {@code [r0, r0 + rows)}, {@code j < width}. */
    static void addBias(float[] y, int r0, int rows, int stride, int c0, int width, float[] bias) {
        for (int r = r0; r < r0 + rows; r++) {
            int o = r * stride + c0;
            int j = VECTOR ? Lanes.addBias(y, o, width, bias, c0) : 0;
            for (; j < width; j++) {
                y[o + j] += bias[c0 + j];
            }
        }
    }

    /**
     * {@code residual[i] += y[i] + bias[c0 + j]} with {@code i = r * stride + c0 + j} for rows {@code [r0, r0 +
     * rows)}, {@code j < width}: {@code y + bias} rounds to float before the residual adds, as separate adds would.
     */
    static void addResidual(
            float[] residual, float[] y, int r0, int rows, int stride, int c0, int width, float[] bias) {
        for (int r = r0; r < r0 + rows; r++) {
            int o = r * stride + c0;
            int j = VECTOR ? Lanes.addResidual(residual, y, o, width, bias, c0) : 0;
            for (; j < width; j++) {
                residual[o + j] += y[o + j] + bias[c0 + j];
            }
        }
    }

    /** The Vector API forms, in their own class so that nothing loads the Vector API without it. */
    private static final class Lanes {
        private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;

        /** Whole vectors of one row from {@code o}; returns where the scalar tail starts. */
        static int addBias(float[] y, int o, int width, float[] bias, int b) {
            int n = F.length();
            int j = 0;
            for (; j + n <= width; j += n) {
                FloatVector.fromArray(F, y, o + j)
                        .add(FloatVector.fromArray(F, bias, b + j))
                        .intoArray(y, o + j);
            }
            return j;
        }

        /** Whole vectors of one row from {@code o}; returns where the scalar tail starts. */
        static int addResidual(float[] residual, float[] y, int o, int width, float[] bias, int b) {
            int n = F.length();
            int j = 0;
            for (; j + n <= width; j += n) {
                FloatVector sum = FloatVector.fromArray(F, y, o + j).add(FloatVector.fromArray(F, bias, b + j));
                FloatVector.fromArray(F, residual, o + j).add(sum).intoArray(residual, o + j);
            }
            return j;
        }
    }
}
