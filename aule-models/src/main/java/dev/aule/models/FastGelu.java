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
 * Vector API form, when the Vector API is in the boot layer, runs a division-free fit of its own in float lanes, at
 * most {@code 1e-7 |x|} off (see {@link Lanes}); the series of {@link Activations#erf} stays the precise reference
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
     * The Vector API form in float lanes, in its own class so that nothing loads the Vector API without it, with a
     * fit of its own that needs no division (a vector divide costs more than the rest of the lane's work together):
     * with {@code z = |x|/sqrt 2},
     * <ul>
     *   <li>{@code z < 0.9}: {@code erfc(z) = 1 - z E(z^2)}, E of degree 5 fitted to {@code erf(z)/z};</li>
     *   <li>{@code z >= 0.9}: {@code erfc(z) = exp(Q(min(z, 5)) - z^2)}, Q of degree 5 fitted to
     *       {@code log erfc(z) + z^2} on [0.9, 5] with the error weighted by {@code erfc(z)} (what a GELU value feels is
     *       erfc's absolute error).</li>
     * </ul>
     * Both are near-minimax fits (iteratively reweighted least squares in float64 against SciPy's erf and erfc). In
     * float arithmetic a GELU value is at most {@code 0.83e-7 |x|} off over {@code [-12, 12]} (the test holds it to
     * {@code 1e-7 |x|}): far inside a model's agreement with ONNX Runtime, whose own float erf errs by as much.
     */
    private static final class Lanes {
        private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
        private static final float SPLIT = 0.9f;
        private static final float Q_MAX = 5f;
        // E(s) = E0 + E1 s + ... + E5 s^5, erf(z) ~ z E(z^2) on [0, 0.9]
        private static final float E0 = 1.128379107e+00f;
        private static final float E1 = -3.761237562e-01f;
        private static final float E2 = 1.128113493e-01f;
        private static final float E3 = -2.675094828e-02f;
        private static final float E4 = 4.977839999e-03f;
        private static final float E5 = -5.938577233e-04f;
        // Q(z) = Q0 + Q1 z + ... + Q5 z^5, log erfc(z) + z^2 ~ Q(z) on [0.9, 5]
        private static final float Q0 = -1.878197421e-03f;
        private static final float Q1 = -1.120188832e+00f;
        private static final float Q2 = 3.492418528e-01f;
        private static final float Q3 = -9.110718966e-02f;
        private static final float Q4 = 1.557838358e-02f;
        private static final float Q5 = -1.251475420e-03f;

        /** Processes whole vectors from {@code from}; returns where the scalar tail starts. */
        static int apply(float[] x, int from, int to) {
            int n = F.length();
            int i = from;
            for (; i + n <= to; i += n) {
                FloatVector v = FloatVector.fromArray(F, x, i);
                FloatVector z = v.abs().mul((float) INV_SQRT2);
                FloatVector s = z.mul(z);
                FloatVector e = s.fma(E5, E4).fma(s, FloatVector.broadcast(F, E3));
                e = e.fma(s, FloatVector.broadcast(F, E2));
                e = e.fma(s, FloatVector.broadcast(F, E1));
                e = e.fma(s, FloatVector.broadcast(F, E0));
                FloatVector small = e.fma(z.neg(), FloatVector.broadcast(F, 1f));
                FloatVector zc = z.blend(Q_MAX, z.compare(VectorOperators.GT, Q_MAX));
                FloatVector q = zc.fma(Q5, Q4).fma(zc, FloatVector.broadcast(F, Q3));
                q = q.fma(zc, FloatVector.broadcast(F, Q2));
                q = q.fma(zc, FloatVector.broadcast(F, Q1));
                q = q.fma(zc, FloatVector.broadcast(F, Q0));
                FloatVector large = exp(z.fma(z.neg(), q));
                FloatVector erfc = large.blend(small, z.compare(VectorOperators.LT, SPLIT));
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
         * bits; arguments below -87 give about 1e-38 (a compare and a blend: {@code max} compiles to five
         * instructions for Java's NaN and signed-zero rules). Not {@code lanewise(EXP)}: the JIT's intrinsic and the
         * Java fallback the interpreter runs round differently, so a value would change once its caller compiled.
         */
        private static FloatVector exp(FloatVector x) {
            FloatVector xc = x.blend(-87f, x.compare(VectorOperators.LT, -87f));
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
