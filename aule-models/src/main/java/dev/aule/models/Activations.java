package dev.aule.models;

import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The elementwise functions of an encoder layer, in double precision and rounded once to float: the activations
 * (GELU with erf, its tanh approximation, ReLU) and LayerNorm.
 */
final class Activations {
    private static final boolean VECTOR = VectorApi.PRESENT;
    private static final double SQRT_HALF = Math.sqrt(0.5);
    private static final double SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

    private Activations() {}

    /** Applies the activation in place to {@code x[from, to)}. */
    static void apply(BertConfig.Activation activation, float[] x, int from, int to) {
        switch (activation) {
            case GELU_ERF -> FastGelu.apply(x, from, to);
            case GELU_TANH -> {
                for (int i = from; i < to; i++) {
                    double v = x[i];
                    x[i] = (float) (0.5 * v * (1 + Math.tanh(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v))));
                }
            }
            case RELU -> {
                for (int i = from; i < to; i++) {
                    x[i] = Math.max(0f, x[i]);
                }
            }
        }
    }

    /** GELU with erf from {@link #erf}: the precise reference of {@link FastGelu}. */
    static double preciseGelu(double v) {
        return 0.5 * v * (1 + erf(v * SQRT_HALF));
    }

    /**
     * The error function to about 1e-15 absolute: its Maclaurin series below 2 (at most 40 terms; the largest term
     * there is below 10, so the sum loses under two digits to cancellation), and for larger arguments
     * {@code 1 - erfc(x)} with erfc from its continued fraction (Lentz's method), which converges quickly there.
     */
    static double erf(double x) {
        double a = Math.abs(x);
        double r;
        if (a < 2) {
            double x2 = a * a;
            double term = a;
            double sum = a;
            for (int n = 1; n < 60; n++) {
                term *= -x2 / n;
                double add = term / (2 * n + 1);
                sum += add;
                if (Math.abs(add) < 1e-17 * Math.abs(sum)) {
                    break;
                }
            }
            r = sum * (2 / Math.sqrt(Math.PI));
        } else if (a < 6) {
            r = 1 - erfcContinuedFraction(a);
        } else {
            r = 1;
        }
        return x < 0 ? -r : r;
    }

    /**
     * {@code erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...)))))} for {@code x >= 2}.
     */
    private static double erfcContinuedFraction(double x) {
        // f = x + a1/(x + a2/(x + ...)), a_n = n/2, evaluated by the modified Lentz algorithm.
        double tiny = 1e-300;
        double f = x;
        double c = x;
        double d = 0;
        for (int n = 1; n < 200; n++) {
            double an = n * 0.5;
            d = x + an * d;
            d = d == 0 ? tiny : d;
            c = x + an / c;
            c = c == 0 ? tiny : c;
            d = 1 / d;
            double delta = c * d;
            f *= delta;
            if (Math.abs(delta - 1) < 1e-16) {
                break;
            }
        }
        return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
    }

    /**
     * LayerNorm of row {@code row} (of {@code width} values) in place: {@code (x - mean) / sqrt(var + eps) * gamma +
     * beta}, mean and variance summed in double.
     */
    static void layerNorm(float[] x, int row, int width, float[] gamma, float[] beta, double eps) {
        if (VECTOR) {
            Lanes.layerNorm(x, row * width, width, gamma, beta, eps, Lanes.WIDE);
        } else {
            scalarLayerNorm(x, row, width, gamma, beta, eps);
        }
    }

    /** {@link #layerNorm} in the Vector API form of 8 double lanes ({@code wide}) or of 4, for the tests of both. */
    static void vectorLayerNorm(float[] x, int row, int width, float[] gamma, float[] beta, double eps, boolean wide) {
        Lanes.layerNorm(x, row * width, width, gamma, beta, eps, wide);
    }

    /** {@link #layerNorm} in scalar loops: the reference the Vector API form matches bit for bit. */
    static void scalarLayerNorm(float[] x, int row, int width, float[] gamma, float[] beta, double eps) {
        int o = row * width;
        double mean = sum(x, o, width, 0, false) / width;
        double inv = 1 / Math.sqrt(sum(x, o, width, mean, true) / width + eps);
        for (int i = 0; i < width; i++) {
            x[o + i] = (float) ((x[o + i] - mean) * inv * gamma[i] + beta[i]);
        }
    }

    /**
     * {@code sum(x[o + i] - mean)} or, with {@code squares}, {@code sum((x[o + i] - mean)^2)} for {@code i < width}, in double
     * over 8 running sums, i modulo 8, added in a fixed order: one sum over a row would wait on each add's latency
     * (LayerNorm took 7 % of a BERT forward that way), and a fixed order keeps the result the same on every run.
     */
    private static double sum(float[] x, int o, int width, double mean, boolean squares) {
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
        int i = 0;
        for (; i + 8 <= width; i += 8) {
            double d0 = x[o + i] - mean, d1 = x[o + i + 1] - mean, d2 = x[o + i + 2] - mean, d3 = x[o + i + 3] - mean;
            double d4 = x[o + i + 4] - mean, d5 = x[o + i + 5] - mean, d6 = x[o + i + 6] - mean;
            double d7 = x[o + i + 7] - mean;
            if (squares) {
                d0 *= d0;
                d1 *= d1;
                d2 *= d2;
                d3 *= d3;
                d4 *= d4;
                d5 *= d5;
                d6 *= d6;
                d7 *= d7;
            }
            s0 += d0;
            s1 += d1;
            s2 += d2;
            s3 += d3;
            s4 += d4;
            s5 += d5;
            s6 += d6;
            s7 += d7;
        }
        for (; i < width; i++) {
            double d = x[o + i] - mean;
            s0 += squares ? d * d : d;
        }
        return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
    }

    /**
     * LayerNorm in double lanes, in its own class so that nothing loads the Vector API without it. The 8 running
     * sums of {@link #sum} are the lanes of one vector of 8 doubles where the vectors are 512 bits wide, else of two
     * vectors of 4 (lanes {@code i mod 8} below 4 and from 4), added in the same order, and the normalisation does
     * the scalar form's operations lane by lane, so the bits are those of the scalar loops at either width. The
     * 8-lane form takes half the instructions (at 384 wide: 48 conversions a pass instead of 96).
     */
    private static final class Lanes {
        /** Whether the 8-lane form runs: 512-bit vectors, where its doubles fill one register. */
        static final boolean WIDE = dev.aule.cpu.vector.SimdWidth.bits() >= 512;

        private static final VectorSpecies<Float> F4 = FloatVector.SPECIES_128;
        private static final VectorSpecies<Double> D4 = DoubleVector.SPECIES_256;
        private static final VectorSpecies<Float> F8 = FloatVector.SPECIES_256;
        private static final VectorSpecies<Double> D8 = DoubleVector.SPECIES_512;

        static void layerNorm(float[] x, int o, int width, float[] gamma, float[] beta, double eps, boolean wide) {
            double mean = (wide ? sum8(x, o, width, 0, false) : sum(x, o, width, 0, false)) / width;
            double inv =
                    1 / Math.sqrt((wide ? sum8(x, o, width, mean, true) : sum(x, o, width, mean, true)) / width + eps);
            int i = 0;
            if (wide) {
                for (; i + 8 <= width; i += 8) {
                    DoubleVector v = widen8(x, o + i).sub(mean).mul(inv);
                    ((FloatVector) v.mul(widen8(gamma, i))
                                    .add(widen8(beta, i))
                                    .convertShape(VectorOperators.D2F, F8, 0))
                            .intoArray(x, o + i);
                }
            }
            for (; i + 4 <= width; i += 4) {
                DoubleVector v = widen(x, o + i).sub(mean).mul(inv);
                ((FloatVector) v.mul(widen(gamma, i)).add(widen(beta, i)).convertShape(VectorOperators.D2F, F4, 0))
                        .intoArray(x, o + i);
            }
            for (; i < width; i++) {
                x[o + i] = (float) ((x[o + i] - mean) * inv * gamma[i] + beta[i]);
            }
        }

        private static DoubleVector widen(float[] a, int at) {
            return (DoubleVector) FloatVector.fromArray(F4, a, at).convertShape(VectorOperators.F2D, D4, 0);
        }

        private static DoubleVector widen8(float[] a, int at) {
            return (DoubleVector) FloatVector.fromArray(F8, a, at).convertShape(VectorOperators.F2D, D8, 0);
        }

        /** {@link Activations#sum}, bit for bit, in two vectors of 4 lanes. */
        private static double sum(float[] x, int o, int width, double mean, boolean squares) {
            DoubleVector low = DoubleVector.zero(D4);
            DoubleVector high = DoubleVector.zero(D4);
            int i = 0;
            for (; i + 8 <= width; i += 8) {
                DoubleVector d0 = widen(x, o + i).sub(mean);
                DoubleVector d1 = widen(x, o + i + 4).sub(mean);
                if (squares) {
                    d0 = d0.mul(d0);
                    d1 = d1.mul(d1);
                }
                low = low.add(d0);
                high = high.add(d1);
            }
            double s0 = low.lane(0);
            for (; i < width; i++) {
                double d = x[o + i] - mean;
                s0 += squares ? d * d : d;
            }
            return ((s0 + low.lane(1)) + (low.lane(2) + low.lane(3)))
                    + ((high.lane(0) + high.lane(1)) + (high.lane(2) + high.lane(3)));
        }

        /** {@link Activations#sum}, bit for bit, in one vector of 8 lanes. */
        private static double sum8(float[] x, int o, int width, double mean, boolean squares) {
            DoubleVector all = DoubleVector.zero(D8);
            int i = 0;
            for (; i + 8 <= width; i += 8) {
                DoubleVector d = widen8(x, o + i).sub(mean);
                all = all.add(squares ? d.mul(d) : d);
            }
            double s0 = all.lane(0);
            for (; i < width; i++) {
                double d = x[o + i] - mean;
                s0 += squares ? d * d : d;
            }
            return ((s0 + all.lane(1)) + (all.lane(2) + all.lane(3)))
                    + ((all.lane(4) + all.lane(5)) + (all.lane(6) + all.lane(7)));
        }
    }
}
