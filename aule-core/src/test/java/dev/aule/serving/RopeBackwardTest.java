package dev.aule.serving;

import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * RoPE as a differentiable operation: the backward against a float64 transpose written from the
 * definition and against finite differences, the scaling rules' frequencies against the published
 * formulas, caller-given tables, packed rows, and every argument rule.
 */
class RopeBackwardTest {
    private static final Rope.Scaling LLAMA31 = new Rope.Scaling.Llama3(8, 1, 4, 8192);
    private static final Rope.Scaling[] SCALINGS = {
        new Rope.Scaling.None(),
        new Rope.Scaling.Linear(4),
        new Rope.Scaling.Ntk(8),
        new Rope.Scaling.Llama3(8, 1, 4, 64),
        new Rope.Scaling.Yarn(4, 64),
    };

    /** Pair {@code i} of a row: its two element indices. */
    private static int[] pair(Rope.Style style, int rotaryDim, int i) {
        return style == Rope.Style.NEOX ? new int[] {i, i + rotaryDim / 2} : new int[] {2 * i, 2 * i + 1};
    }

    /** cos and sin of pair {@code i} at {@code position} in float64, from the frequency and the scaling's magnitude. */
    private static double[] angle(Rope rope, int i, int position) {
        Rope.Scaling scaling = rope.scaling().orElseThrow();
        double pos = scaling instanceof Rope.Scaling.Linear(double factor) ? position / factor : position;
        double magnitude = scaling instanceof Rope.Scaling.Yarn y ? y.attentionFactor() : 1;
        double a = pos * rope.frequency(i);
        return new double[] {magnitude * Math.cos(a), magnitude * Math.sin(a)};
    }

    @Test
    void backwardIsTheFloat64TransposeForEveryStyleScalingAndPartialRotary() {
        SplittableRandom rnd = new SplittableRandom(11);
        for (Rope.Style style : Rope.Style.values()) {
            for (Rope.Scaling scaling : SCALINGS) {
                for (int[] dims : new int[][] {{64, 64}, {96, 32}, {10, 4}}) { // {headDim, rotaryDim}
                    Rope rope = Rope.of(dims[1], 600, 10000, style, scaling);
                    Tensor g = Tensors.random(rnd, DType.F32, 2, 3, 5, dims[0]);
                    float[] before = g.toFloatArray();
                    int[] starts = {3, 590};
                    rope.applyBackward(g, starts);
                    float[] after = g.toFloatArray();
                    for (int b = 0; b < 2; b++) {
                        for (int h = 0; h < 3; h++) {
                            for (int s = 0; s < 5; s++) {
                                int base = ((b * 3 + h) * 5 + s) * dims[0];
                                for (int i = 0; i < dims[1] / 2; i++) {
                                    int[] p = pair(style, dims[1], i);
                                    double[] cs = angle(rope, i, starts[b] + s);
                                    double g0 = before[base + p[0]];
                                    double g1 = before[base + p[1]];
                                    String where = style + " " + scaling + " pair " + i;
                                    assertEquals(g0 * cs[0] + g1 * cs[1], after[base + p[0]], 3e-6, where);
                                    assertEquals(g1 * cs[0] - g0 * cs[1], after[base + p[1]], 3e-6, where);
                                }
                                for (int e = dims[1]; e < dims[0]; e++) {
                                    assertEquals(
                                            before[base + e], after[base + e], "past the rotary dim: passed through");
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    @Test
    void backwardOfApplyGivesTheInputBackForUnitTables() {
        SplittableRandom rnd = new SplittableRandom(12);
        for (Rope.Style style : Rope.Style.values()) {
            for (Rope.Scaling scaling : SCALINGS) {
                Rope rope = Rope.of(32, 3000, 500000, style, scaling);
                Tensor x = Tensors.random(rnd, DType.F32, 2, 2, 7, 40);
                float[] original = x.toFloatArray();
                int[] starts = {0, 2990};
                rope.apply(x, starts);
                rope.applyBackward(x, starts);
                double m = scaling instanceof Rope.Scaling.Yarn y ? y.attentionFactor() : 1;
                float[] back = x.toFloatArray();
                for (int j = 0; j < back.length; j++) {
                    boolean rotated = j % 40 < 32;
                    assertEquals(
                            original[j] * (rotated ? m * m : 1), back[j], 2e-6, style + " " + scaling + " at " + j);
                }
            }
        }
    }

    /** The loss {@code sum(w * apply(x))} in float64; its gradient with respect to x is {@code applyBackward(w)}. */
    private static double loss(Rope rope, float[] x, float[] w, int[] starts) {
        Tensor t = Tensor.of(x.clone(), 2, 2, 3, 10);
        rope.apply(t, starts);
        float[] y = t.toFloatArray();
        double sum = 0;
        for (int j = 0; j < y.length; j++) {
            sum += (double) w[j] * y[j];
        }
        return sum;
    }

    @Test
    void backwardMatchesFiniteDifferences() {
        SplittableRandom rnd = new SplittableRandom(13);
        for (Rope.Style style : Rope.Style.values()) {
            for (Rope.Scaling scaling : SCALINGS) {
                Rope rope = Rope.of(6, 100, 10000, style, scaling); // partial: 6 of 10 elements rotate
                float[] x = Tensors.random(rnd, DType.F32, 2, 2, 3, 10).toFloatArray();
                float[] w = Tensors.random(rnd, DType.F32, 2, 2, 3, 10).toFloatArray();
                int[] starts = {5, 90};
                Tensor grad = Tensor.of(w.clone(), 2, 2, 3, 10);
                rope.applyBackward(grad, starts);
                float[] analytic = grad.toFloatArray();
                float h = 0.25f;
                for (int j = 0; j < x.length; j++) {
                    float[] plus = x.clone();
                    float[] minus = x.clone();
                    plus[j] += h;
                    minus[j] -= h;
                    double numeric = (loss(rope, plus, w, starts) - loss(rope, minus, w, starts)) / (2 * h);
                    assertEquals(numeric, analytic[j], 1e-4, style + " " + scaling + " element " + j);
                }
            }
        }
    }

    @Test
    void llama31FrequenciesFollowThePublishedRule() {
        for (int[] config : new int[][] {{128, 500000}, {64, 500000}, {128, 10000}}) {
            int dim = config[0];
            double theta = config[1];
            for (Rope.Scaling.Llama3 l : new Rope.Scaling.Llama3[] {
                (Rope.Scaling.Llama3) LLAMA31,
                new Rope.Scaling.Llama3(32, 1, 4, 8192),
                new Rope.Scaling.Llama3(4, 2, 8, 256)
            }) {
                Rope rope = Rope.of(dim, 4, theta, Rope.Style.NEOX, l);
                // Written from Meta's apply_scaling (llama-models) as published, vectorised the way Hugging
                // Face's _compute_llama3_parameters writes it: three masks over the wavelengths.
                for (int i = 0; i < dim / 2; i++) {
                    double invFreq = 1 / Math.pow(theta, (2.0 * i) / dim);
                    double wavelen = 2 * Math.PI / invFreq;
                    double lowFreqWavelen = l.originalMaxPositions() / l.lowFreqFactor();
                    double highFreqWavelen = l.originalMaxPositions() / l.highFreqFactor();
                    double scaled = wavelen > lowFreqWavelen ? invFreq / l.factor() : invFreq;
                    double smooth = (l.originalMaxPositions() / wavelen - l.lowFreqFactor())
                            / (l.highFreqFactor() - l.lowFreqFactor());
                    double smoothed = (1 - smooth) * scaled / l.factor() + smooth * scaled;
                    boolean medium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
                    double expected = medium ? smoothed : scaled;
                    assertEquals(expected, rope.frequency(i), 1e-15 * expected, l + " dim " + dim + " pair " + i);
                }
            }
        }
        // Llama 3.1 8B (head dim 128, theta 500000): the fastest pair is kept, the slowest divided by 8.
        Rope llama = Rope.of(128, 4, 500000, Rope.Style.NEOX, LLAMA31);
        assertEquals(1.0, llama.frequency(0), 0);
        assertEquals(Math.pow(500000, -126.0 / 128) / 8, llama.frequency(63), 1e-20);
    }

    @Test
    void yarnFrequenciesAndMagnitudeFollowThePublishedRule() {
        int dim = 64;
        double theta = 10000;
        for (Rope.Scaling.Yarn y :
                new Rope.Scaling.Yarn[] {new Rope.Scaling.Yarn(4, 4096), new Rope.Scaling.Yarn(16, 2048, 16, 2, 1.5)}) {
            Rope rope = Rope.of(dim, 3, theta, Rope.Style.GPTJ, y);
            // find_correction_dim / find_correction_range / linear_ramp_factor of the YaRN paper's code.
            double low = Math.floor(
                    dim * Math.log(y.originalMaxPositions() / (y.betaFast() * 2 * Math.PI)) / (2 * Math.log(theta)));
            double high = Math.ceil(
                    dim * Math.log(y.originalMaxPositions() / (y.betaSlow() * 2 * Math.PI)) / (2 * Math.log(theta)));
            low = Math.max(low, 0);
            high = Math.min(high, dim - 1);
            for (int i = 0; i < dim / 2; i++) {
                double posFreq = Math.pow(theta, (2.0 * i) / dim);
                double extrapolation = 1 / posFreq;
                double interpolation = 1 / (y.factor() * posFreq);
                double ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
                double extrapolationFactor = 1 - ramp;
                double expected = interpolation * (1 - extrapolationFactor) + extrapolation * extrapolationFactor;
                assertEquals(expected, rope.frequency(i), 1e-15, y + " pair " + i);
            }
            // The table's magnitude: position 0 rotates nothing but scales by the attention factor.
            Tensor x = Tensor.of(new float[] {1, 0, 0, 0}, 1, 1, 1, 4);
            Rope.of(4, 1, theta, Rope.Style.GPTJ, y).apply(x, 0);
            assertEquals(y.attentionFactor(), x.get(0, 0, 0, 0), 1e-6);
        }
        assertEquals(0.1 * Math.log(4) + 1, new Rope.Scaling.Yarn(4, 4096).attentionFactor(), 1e-15);
    }

    @Test
    void givenTablesRotateLikeTheTablesOfTheirTheta() {
        SplittableRandom rnd = new SplittableRandom(14);
        for (Rope.Style style : Rope.Style.values()) {
            Rope fromTheta = Rope.of(16, 50, 10000, style);
            float[][] cos = new float[50][8];
            float[][] sin = new float[50][8];
            for (int p = 0; p < 50; p++) {
                for (int i = 0; i < 8; i++) {
                    double a = p * Math.pow(10000, -2.0 * i / 16);
                    cos[p][i] = (float) Math.cos(a);
                    sin[p][i] = (float) Math.sin(a);
                }
            }
            Rope given = Rope.ofTables(cos, sin, style);
            cos[3][1] = 42; // copied: later changes do not reach the tables
            assertEquals(16, given.rotaryDim());
            assertEquals(50, given.maxPositions());
            assertTrue(Double.isNaN(given.theta()));
            assertTrue(given.scaling().isEmpty());
            Tensor a = Tensors.random(rnd, DType.F32, 2, 2, 9, 24);
            Tensor b = Tensor.of(a.toFloatArray(), 2, 2, 9, 24);
            int[] starts = {0, 41};
            fromTheta.apply(a, starts);
            given.apply(b, starts);
            assertArrayEquals(a.toFloatArray(), b.toFloatArray(), style.toString());
            fromTheta.applyBackward(a, starts);
            given.applyBackward(b, starts);
            assertArrayEquals(a.toFloatArray(), b.toFloatArray(), style.toString());
        }
    }

    @Test
    void packedRowsRotateLikeEachSequenceOnItsOwn() {
        SplittableRandom rnd = new SplittableRandom(15);
        Rope rope = Rope.of(8, 64, 10000, Rope.Style.NEOX, new Rope.Scaling.Linear(2));
        int[] cu = {0, 5, 5, 12, 13};
        int[] starts = {0, 7, 50, 63};
        for (boolean backward : new boolean[] {false, true}) {
            Tensor packed = Tensors.random(rnd, DType.F32, 1, 3, 13, 12);
            float[] expected = packed.toFloatArray();
            for (int n = 0; n < starts.length; n++) {
                int len = cu[n + 1] - cu[n];
                if (len == 0) {
                    continue;
                }
                Tensor one = Tensor.allocate(DType.F32, 1, 3, len, 12);
                float[] row = new float[12];
                for (int h = 0; h < 3; h++) {
                    for (int s = 0; s < len; s++) {
                        packed.readRow(0, h, cu[n] + s, row, 0);
                        one.writeRow(0, h, s, row, 0);
                    }
                }
                if (backward) {
                    rope.applyBackward(one, starts[n]);
                } else {
                    rope.apply(one, starts[n]);
                }
                for (int h = 0; h < 3; h++) {
                    for (int s = 0; s < len; s++) {
                        one.readRow(0, h, s, expected, ((h * 13) + cu[n] + s) * 12);
                    }
                }
            }
            if (backward) {
                rope.applyPackedBackward(packed, cu, starts);
            } else {
                rope.applyPacked(packed, cu, starts);
            }
            assertArrayEquals(expected, packed.toFloatArray(), "backward " + backward);
        }
    }

    /** Throws naming {@code argument} and leaves {@code untouched} as it was. */
    private static void rejects(String argument, Tensor untouched, Executable call) {
        float[] before = untouched == null ? null : untouched.toFloatArray();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().startsWith(argument), "names " + argument + ": " + e.getMessage());
        if (untouched != null) {
            assertArrayEquals(before, untouched.toFloatArray(), "nothing written: " + e.getMessage());
        }
    }

    @Test
    void badScalingParametersAreRejected() {
        rejects("factor", null, () -> new Rope.Scaling.Llama3(0.5, 1, 4, 8192));
        rejects("lowFreqFactor", null, () -> new Rope.Scaling.Llama3(8, 0, 4, 8192));
        rejects("lowFreqFactor", null, () -> new Rope.Scaling.Llama3(8, Double.POSITIVE_INFINITY, 4, 8192));
        rejects("highFreqFactor", null, () -> new Rope.Scaling.Llama3(8, 4, 4, 8192));
        rejects("highFreqFactor", null, () -> new Rope.Scaling.Llama3(8, 1, Double.NaN, 8192));
        rejects("originalMaxPositions", null, () -> new Rope.Scaling.Llama3(8, 1, 4, 0));
        rejects("factor", null, () -> new Rope.Scaling.Yarn(Double.NaN, 4096));
        rejects("originalMaxPositions", null, () -> new Rope.Scaling.Yarn(4, 0));
        rejects("betaSlow", null, () -> new Rope.Scaling.Yarn(4, 4096, 32, 0, 1));
        rejects("betaFast", null, () -> new Rope.Scaling.Yarn(4, 4096, 1, 1, 1));
        rejects("attentionFactor", null, () -> new Rope.Scaling.Yarn(4, 4096, 32, 1, 0));
        rejects("attentionFactor", null, () -> new Rope.Scaling.Yarn(4, 4096, 32, 1, Double.POSITIVE_INFINITY));
    }

    @Test
    void badTablesAreRejected() {
        float[][] good = {{1, 1}, {1, 1}};
        rejects("cos", null, () -> Rope.ofTables(new float[0][], new float[0][], Rope.Style.NEOX));
        rejects("sin", null, () -> Rope.ofTables(good, new float[][] {{1, 1}}, Rope.Style.NEOX));
        rejects("cos[0]", null, () -> Rope.ofTables(new float[][] {{}}, new float[][] {{}}, Rope.Style.NEOX));
        rejects("cos[1]", null, () -> Rope.ofTables(new float[][] {{1, 1}, {1}}, good, Rope.Style.NEOX));
        rejects("sin[1]", null, () -> Rope.ofTables(good, new float[][] {{1, 1}, null}, Rope.Style.NEOX));
        rejects("cos[1][0]", null, () -> Rope.ofTables(new float[][] {{1, 1}, {Float.NaN, 1}}, good, Rope.Style.GPTJ));
        rejects(
                "sin[0][1]",
                null,
                () -> Rope.ofTables(good, new float[][] {{1, Float.POSITIVE_INFINITY}, {1, 1}}, Rope.Style.GPTJ));
        assertThrows(NullPointerException.class, () -> Rope.ofTables(good, good, null));
    }

    @Test
    void badBackwardAndPackedArgumentsAreRejectedBeforeAnythingIsWritten() {
        Rope rope = Rope.of(8, 10, 10000, Rope.Style.GPTJ);
        Tensor g = Tensor.allocate(DType.F32, 2, 1, 4, 8);
        g.fill(1f);
        rejects("startPositions", g, () -> rope.applyBackward(g, new int[] {0}));
        rejects("startPositions[1]", g, () -> rope.applyBackward(g, new int[] {0, 7}));
        rejects("startPositions[0]", g, () -> rope.applyBackward(g, new int[] {-1, 0}));
        rejects("grad", null, () -> rope.applyBackward(Tensor.allocate(DType.F32, 1, 1, 1, 6), 0));
        Tensor packed = Tensor.allocate(DType.F32, 1, 2, 6, 8);
        packed.fill(1f);
        int[] starts = {0, 0};
        rejects("x", g, () -> rope.applyPacked(g, new int[] {0, 4}, new int[] {0}));
        rejects("cuSeqlens", packed, () -> rope.applyPacked(packed, new int[] {1, 6}, new int[] {0}));
        rejects("cuSeqlens", packed, () -> rope.applyPacked(packed, new int[] {0, 5}, new int[] {0}));
        rejects("cuSeqlens", packed, () -> rope.applyPacked(packed, new int[] {6}, new int[] {}));
        rejects("cuSeqlens", packed, () -> rope.applyPackedBackward(packed, new int[] {0, 4, 3, 6}, new int[3]));
        rejects("startPositions", packed, () -> rope.applyPacked(packed, new int[] {0, 2, 6}, new int[] {0}));
        rejects(
                "startPositions[1]",
                packed,
                () -> rope.applyPackedBackward(packed, new int[] {0, 2, 6}, new int[] {0, 7}));
        rejects(
                "grad",
                null,
                () -> rope.applyPackedBackward(
                        Tensor.allocate(DType.F32, 1, 1, 2, 6), new int[] {0, 2}, new int[] {0}));
        rope.applyPacked(packed, new int[] {0, 2, 6}, starts); // the same tensor is fine once the call is good
    }
}
