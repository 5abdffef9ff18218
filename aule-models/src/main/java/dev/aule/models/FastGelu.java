package dev.aule.models;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * GELU with erf, fast: {@code gelu(x) = x - x/2 erfc(z)} for {@code x >= 0} and {@code x/2 erfc(z)} below, with
 * {@code z = |x|/sqrt 2} and erfc from the Chebyshev fit of Numerical Recipes ({@code erfcc}: {@code t exp(-z^2 +
 * P(t))}, {@code t = 1/(1 + z/2)}, P of degree 9, fractional error below 1.2e-7 for every z). The scalar form
 * computes it in double: the error that adds to a GELU value is at most {@code 0.6e-7 |x|}, under half a float ulp
 * of {@code x}. The
 * Vector API form runs the same fit in float lanes with the vector exp when the Vector API is in the boot layer, at
 * most {@code 2e-7 |x|} off (see {@link Lanes}); the series of {@link Activations#erf} stays the precise reference
 * the tests hold both to.
 */
final class FastGelu {
    private static final boolean VECTOR = VectorApi.PRESENT;
    private static final double INV_SQRT2 = Math.sqrt(0.5);
    /** P(t), constant term first. */
    private static final double[] P = {
        -1.26551223,
        1.00002368,
        0.37409196,
        0.09678418,
        -0.18628806,
        0.27886807,
        -1.13520398,
        1.48851587,
        -0.82215223,
        0.17087277
    };

    private FastGelu() {}

    /** GELU in place over {@code x[from, to)}. */
    static void apply(float[] x, int from, int to) {
        int i = from;
        if (VECTOR) {
            i = Lanes.apply(x, from, to);
        }
        for (; i < to; i++) {
            x[i] = (float) gelu(x[i]);
        }
    }

    static double gelu(double x) {
        double z = Math.abs(x) * INV_SQRT2;
        double t = 1 / (1 + 0.5 * z);
        double p = P[9];
        for (int k = 8; k >= 0; k--) {
            p = p * t + P[k];
        }
        double erfc = t * Math.exp(-z * z + p);
        double half = 0.5 * x * erfc;
        return x >= 0 ? x - half : half;
    }

    /**
     * The Vector API form in float lanes, in its own class so that nothing loads the Vector API without it: twice the
     * lanes of double and no conversions, the cheapest part of an encoder layer's feed-forward block. Float rounding
     * in {@code P(t)} and in {@code -z^2 + P(t)} adds a few 1e-7 of relative error to erfc, so a GELU value is at
     * most {@code 1.82e-7 |x|} off over {@code [-12, 12]} (3 float ulps of x; the test holds it to {@code 2e-7
     * |x|}): far inside a model's agreement with ONNX Runtime, whose own float erf errs by as much.
     */
    private static final class Lanes {
        private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
        private static final float[] PF = new float[P.length];

        static {
            for (int k = 0; k < P.length; k++) {
                PF[k] = (float) P[k];
            }
        }

        /** Processes whole vectors from {@code from}; returns where the scalar tail starts. */
        static int apply(float[] x, int from, int to) {
            int n = F.length();
            int i = from;
            for (; i + n <= to; i += n) {
                FloatVector v = FloatVector.fromArray(F, x, i);
                FloatVector z = v.abs().mul((float) INV_SQRT2);
                FloatVector t = FloatVector.broadcast(F, 1f).div(z.mul(0.5f).add(1f));
                FloatVector p = FloatVector.broadcast(F, PF[9]);
                for (int k = 8; k >= 0; k--) {
                    p = p.fma(t, FloatVector.broadcast(F, PF[k]));
                }
                FloatVector erfc = t.mul(exp(z.mul(z).neg().add(p)));
                FloatVector half = v.mul(0.5f).mul(erfc);
                v.sub(half).blend(half, v.compare(VectorOperators.LT, 0)).intoArray(x, i);
            }
            return i;
        }

        private static final float LOG2E = 1.44269504f;
        private static final float LN2_HI = 0.693145752f;
        private static final float LN2_LO = 1.42860677e-6f;
        /** 1.5 * 2^23: adding it rounds a float of magnitude below 2^22 to an integer in its low mantissa bits. */
        private static final float ROUNDER = 12582912f;

        /**
         * e^x for {@code x <= 0} from IEEE arithmetic alone: {@code x = n ln2 + r} with {@code |r| <= ln2/2}, a
         * degree-7 Taylor polynomial of {@code e^r} (truncation below 1e-8), times {@code 2^n} built in the exponent
         * bits; arguments below -87 give about 1e-38. Not {@code lanewise(EXP)}: the JIT's intrinsic and the Java
         * fallback the interpreter runs round differently, so a value would change once its caller compiled.
         */
        private static FloatVector exp(FloatVector x) {
            FloatVector xc = x.max(-87f);
            FloatVector rounded = xc.fma(LOG2E, ROUNDER);
            FloatVector n = rounded.sub(ROUNDER);
            FloatVector r = n.fma(FloatVector.broadcast(F, -LN2_HI), xc);
            r = n.fma(FloatVector.broadcast(F, -LN2_LO), r);
            FloatVector poly = r.fma(1f / 5040, 1f / 720);
            poly = poly.fma(r, FloatVector.broadcast(F, 1f / 120));
            poly = poly.fma(r, FloatVector.broadcast(F, 1f / 24));
            poly = poly.fma(r, FloatVector.broadcast(F, 1f / 6));
            poly = poly.fma(r, FloatVector.broadcast(F, 0.5f));
            poly = poly.fma(r, FloatVector.broadcast(F, 1f));
            poly = poly.fma(r, FloatVector.broadcast(F, 1f));
            FloatVector twoToN = n.convert(VectorOperators.F2I, 0)
                    .lanewise(VectorOperators.ADD, 127)
                    .lanewise(VectorOperators.LSHL, 23)
                    .reinterpretAsFloats();
            return poly.mul(twoToN);
        }
    }
}
