package dev.aule.reference;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.testing.BackwardCases;
import dev.aule.testing.BackwardCases.Case;
import dev.aule.testing.BackwardCases.Qkv;
import dev.aule.testing.ForwardCase;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The oracle checked on its own, since every other backend is judged by it: hand-computed cases,
 * then agreement with a second float64 implementation written here independently from the
 * semantics (an explicit visibility predicate per (i, j), not the reference's interval bounds).
 * A shared misreading of the contract by the reference and the CPU backend would pass every
 * comparison between them; it would not pass these.
 */
class ReferenceForwardTest {
    private final ReferenceBackend reference = (ReferenceBackend) Backends.get("reference");

    @Test
    void oneKeyGivesItsValueAndItsScoreAsLse() {
        Tensor q = Tensor.of(new float[] {1, 2}, 1, 1, 1, 2);
        Tensor k = Tensor.of(new float[] {3, -1}, 1, 1, 1, 2);
        Tensor v = Tensor.of(new float[] {0.25f, -4f, 7f}, 1, 1, 1, 3);
        Tensor out = Tensor.allocate(DType.F32, 1, 1, 1, 3);
        Tensor lse = Tensor.allocate(DType.F32, 1, 1, 1, 1);
        reference.forward(q, k, v, out, lse, AttentionOptions.defaults());
        assertEquals(0.25f, out.get(0, 0, 0, 0));
        assertEquals(-4f, out.get(0, 0, 0, 1));
        assertEquals(7f, out.get(0, 0, 0, 2));
        assertEquals((float) ((1 * 3 + 2 * -1) / Math.sqrt(2)), lse.get(0, 0, 0, 0), 1e-7); // the one score
    }

    @Test
    void twoKeysByHand() {
        // q = (1, 0), keys (1, 0) and (0, 1), scale 1: scores 1 and 0, p = (e, 1) / (e + 1).
        Tensor q = Tensor.of(new float[] {1, 0}, 1, 1, 1, 2);
        Tensor k = Tensor.of(new float[] {1, 0, 0, 1}, 1, 1, 2, 2);
        Tensor v = Tensor.of(new float[] {10, 0}, 1, 1, 2, 1);
        Tensor out = Tensor.allocate(DType.F32, 1, 1, 1, 1);
        Tensor lse = Tensor.allocate(DType.F32, 1, 1, 1, 1);
        reference.forward(
                q, k, v, out, lse, AttentionOptions.builder().scale(1f).build());
        assertEquals(10 * Math.E / (Math.E + 1), out.get(0, 0, 0, 0), 1e-5);
        assertEquals(Math.log(Math.E + 1), lse.get(0, 0, 0, 0), 1e-6);

        // ALiBi slope 2 on a single query (Sq 1, Sk 2: offset 1, the query sits at key 1): key 0 is
        // 1 away, so scores become 1 - 2 = -1 and 0.
        reference.forward(
                q,
                k,
                v,
                out,
                lse,
                AttentionOptions.builder()
                        .scale(1f)
                        .alibiSlopes(new float[] {2f})
                        .build());
        assertEquals(10 * Math.exp(-1) / (Math.exp(-1) + 1), out.get(0, 0, 0, 0), 1e-5);

        // Softcap 0.5: scores 0.5 tanh(2) and 0.
        double s0 = 0.5 * Math.tanh(2);
        reference.forward(
                q,
                k,
                v,
                out,
                lse,
                AttentionOptions.builder().scale(1f).softcap(0.5f).build());
        assertEquals(10 * Math.exp(s0) / (Math.exp(s0) + 1), out.get(0, 0, 0, 0), 1e-5);
    }

    /** Scale 0 makes every score 0: out is the mean of the visible values, lse the log of their count. */
    @Test
    void zeroScaleAveragesTheVisibleValues() {
        AttentionOptions options =
                AttentionOptions.builder().scale(0f).causal(true).build();
        Qkv in = BackwardCases.qkv(new SplittableRandom(1), new Case(DType.F32, 1, 1, 1, 4, 6, 8, 3, options));
        Tensor out = Tensor.allocate(DType.F32, 1, 1, 4, 3);
        Tensor lse = Tensor.allocate(DType.F32, 1, 1, 4, 1);
        reference.forward(in.q(), in.k(), in.v(), out, lse, options);
        for (int i = 0; i < 4; i++) {
            int visible = i + 2 + 1; // bottom-right causal, offset 6 - 4 = 2: keys 0..i+2
            assertEquals(Math.log(visible), lse.get(0, 0, i, 0), 1e-6, "row " + i);
            for (int x = 0; x < 3; x++) {
                double mean = 0;
                for (int j = 0; j < visible; j++) {
                    mean += in.v().get(0, 0, j, x) / (double) visible;
                }
                assertEquals(mean, out.get(0, 0, i, x), 1e-6, "row " + i + " x " + x);
            }
        }
    }

    @Test
    void agreesWithAnIndependentFloat64ImplementationOnRandomCases() {
        SplittableRandom rnd = new SplittableRandom(77);
        for (int c = 0; c < 60; c++) {
            int hkv = 1 + rnd.nextInt(2);
            int hq = hkv * (1 + rnd.nextInt(3));
            int sq = 1 + rnd.nextInt(12);
            int sk = 1 + rnd.nextInt(12);
            int d = 1 + rnd.nextInt(9);
            int dv = 1 + rnd.nextInt(9);
            AttentionOptions options = ForwardCase.randomOptions(rnd, hq, sk);
            Tensor q = Tensors.random(rnd, DType.F32, 2, hq, sq, d);
            Tensor k = Tensors.random(rnd, DType.F32, 2, hkv, sk, d);
            Tensor v = Tensors.random(rnd, DType.F32, 2, hkv, sk, dv);
            Tensor out = Tensor.allocate(DType.F32, 2, hq, sq, dv);
            Tensor lse = Tensor.allocate(DType.F32, 2, hq, sq, 1);
            reference.forward(q, k, v, out, lse, options);
            String where = "case " + c + ": Hq " + hq + " Hkv " + hkv + " Sq " + sq + " Sk " + sk + " " + options;
            for (int b = 0; b < 2; b++) {
                for (int h = 0; h < hq; h++) {
                    for (int i = 0; i < sq; i++) {
                        double[] want = new double[dv];
                        double wantLse = attentionRow(q, k, v, options, b, h, i, want);
                        assertEquals(
                                wantLse,
                                lse.get(b, h, i, 0),
                                Math.max(1, Math.abs(wantLse)) * 1e-6,
                                where + " lse (" + b + ", " + h + ", " + i + ")");
                        for (int x = 0; x < dv; x++) {
                            assertEquals(
                                    want[x],
                                    out.get(b, h, i, x),
                                    1e-6,
                                    where + " out (" + b + ", " + h + ", " + i + ", " + x + ")");
                        }
                    }
                }
            }
        }
    }

    /**
     * One output row straight from the contract's numbered rules, with its own visibility test per
     * key. Returns the LSE (-inf for a row that sees nothing, whose output stays 0).
     */
    private static double attentionRow(
            Tensor q, Tensor k, Tensor v, AttentionOptions options, int b, int h, int i, double[] out) {
        int sq = q.seqLen();
        int sk = k.seqLen();
        int kvHead = h / (q.heads() / k.heads()); // rule 1
        int offset = sk - sq;
        int left = options.windowLeft();
        int right = options.causal() ? 0 : options.windowRight(); // rule 5: causal sets right = 0
        double scale = options.explicitScale().map(Float::doubleValue).orElse(1 / Math.sqrt(q.headDim()));
        double[] s = new double[sk];
        boolean[] visible = new boolean[sk];
        double max = Double.NEGATIVE_INFINITY;
        for (int j = 0; j < sk; j++) {
            visible[j] = (left == -1 || j >= i + offset - left) && (right == -1 || j <= i + offset + right);
            if (!visible[j]) {
                continue;
            }
            double dot = 0;
            for (int x = 0; x < q.headDim(); x++) {
                dot += (double) q.get(b, h, i, x) * k.get(b, kvHead, j, x);
            }
            s[j] = scale * dot; // rule 2
            if (options.softcap() > 0) {
                s[j] = options.softcap() * Math.tanh(s[j] / options.softcap()); // rule 3
            }
            s[j] -= options.alibiSlope(h) * Math.abs(i + offset - j); // rule 4
            max = Math.max(max, s[j]);
        }
        if (max == Double.NEGATIVE_INFINITY) {
            return Double.NEGATIVE_INFINITY; // rule 7
        }
        double sum = 0;
        for (int j = 0; j < sk; j++) {
            if (visible[j]) {
                sum += Math.exp(s[j] - max);
            }
        }
        double lse = max + Math.log(sum); // rule 6
        for (int j = 0; j < sk; j++) {
            if (visible[j]) {
                double p = Math.exp(s[j] - lse);
                for (int x = 0; x < v.headDim(); x++) {
                    out[x] += p * v.get(b, kvHead, j, x);
                }
            }
        }
        return lse;
    }

    /** The reference's F32 output is its float64 result rounded once: within an F32 ulp of the truth. */
    @Test
    void halfPrecisionInputsAreReadExactly() {
        SplittableRandom rnd = new SplittableRandom(3);
        Tensor q16 = Tensors.random(rnd, DType.BF16, 1, 2, 5, 8);
        Tensor k16 = Tensors.random(rnd, DType.F16, 1, 2, 7, 8);
        Tensor v16 = Tensors.random(rnd, DType.F16, 1, 2, 7, 8);
        // The same values widened to F32 must give the same result: F16/BF16 are storage only.
        Tensor q = Tensor.of(q16.toFloatArray(), 1, 2, 5, 8);
        Tensor k = Tensor.of(k16.toFloatArray(), 1, 2, 7, 8);
        Tensor v = Tensor.of(v16.toFloatArray(), 1, 2, 7, 8);
        Tensor a = Tensor.allocate(DType.F32, 1, 2, 5, 8);
        Tensor b = Tensor.allocate(DType.F32, 1, 2, 5, 8);
        reference.forward(q16, k16, v16, a, null, AttentionOptions.defaults());
        reference.forward(q, k, v, b, null, AttentionOptions.defaults());
        assertTrue(java.util.Arrays.equals(a.toFloatArray(), b.toFloatArray()));
    }
}
