package dev.aule.testing;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Gradients;
import dev.aule.Tensor;
import dev.aule.spi.Accuracy;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.BackwardInputs;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertTrue;

/** Backward test cases: random shapes and options, inputs with the forward's out and LSE, poisoned gradients. */
public final class BackwardCases {
    private static final int[] LENGTHS = {1, 3, 17, 64, 65, 127};
    private static final int[] HEAD_DIMS = {16, 32, 64, 80, 128};
    private static final int[][] HEADS = {{1, 1}, {2, 2}, {4, 2}, {4, 1}, {8, 1}};

    private BackwardCases() {}

    /** One call's geometry, storage type and options. */
    public record Case(
            DType dtype,
            int batch,
            int queryHeads,
            int kvHeads,
            int queryLen,
            int keyLen,
            int headDim,
            int valueDim,
            AttentionOptions options) {
        /** This case with other options. */
        public Case withOptions(AttentionOptions other) {
            return new Case(dtype, batch, queryHeads, kvHeads, queryLen, keyLen, headDim, valueDim, other);
        }

        @Override
        public String toString() {
            return dtype + " B" + batch + " Hq" + queryHeads + " Hkv" + kvHeads + " Sq" + queryLen + " Sk" + keyLen
                    + " D" + headDim + " Dv" + valueDim + " " + options;
        }
    }

    /** The q, k and v of one call. */
    public record Qkv(Tensor q, Tensor k, Tensor v) {}

    /** The forward's inputs and results plus a random output gradient. */
    public record Inputs(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, Tensor dOut) {}

    /** A random case: odd and tile-sized lengths both ways, GQA and MQA, any mix of the options. */
    public static Case random(SplittableRandom rnd, DType dtype) {
        int[] heads = HEADS[rnd.nextInt(HEADS.length)];
        int d = HEAD_DIMS[rnd.nextInt(HEAD_DIMS.length)];
        int dv = rnd.nextInt(3) == 0 ? HEAD_DIMS[rnd.nextInt(HEAD_DIMS.length)] : d;
        int sq = LENGTHS[rnd.nextInt(LENGTHS.length)];
        int sk = LENGTHS[rnd.nextInt(LENGTHS.length)];
        return new Case(dtype, 1 + rnd.nextInt(2), heads[0], heads[1], sq, sk, d, dv, randomOptions(rnd, heads[0], d));
    }

    /** Causal, ALiBi over 8 query heads (a zero slope among them) and a softcap of 2: the GQA 8:1 corner case. */
    public static AttentionOptions causalAlibiSoftcap8() {
        return AttentionOptions.builder()
                .causal(true)
                .alibiSlopes(new float[] {0.5f, 0.25f, 0.125f, 0.0625f, 0.03f, 0.02f, 0.01f, 0f})
                .softcap(2f)
                .build();
    }

    public static AttentionOptions randomOptions(SplittableRandom rnd, int queryHeads, int headDim) {
        AttentionOptions.Builder b = AttentionOptions.builder().causal(rnd.nextBoolean());
        if (rnd.nextInt(3) == 0) {
            b.window(rnd.nextInt(-1, 20), rnd.nextInt(-1, 20));
        }
        if (rnd.nextInt(3) == 0) {
            b.softcap((float) (0.5 + rnd.nextDouble() * 3)); // small caps, so tanh bends the scores
        }
        if (rnd.nextInt(3) == 0) {
            float[] slopes = new float[queryHeads];
            for (int h = 0; h < queryHeads; h++) {
                slopes[h] = (float) (rnd.nextDouble() * 0.3);
            }
            b.alibiSlopes(slopes);
        }
        if (rnd.nextInt(3) == 0) {
            b.scale((float) ((0.5 + rnd.nextDouble() * 3) / Math.sqrt(headDim))); // up to 3.5x: peakier softmax
        }
        return b.build();
    }

    /** Random q, k and v of case {@code c} (BHSD, its dtype), drawn in that order. */
    public static Qkv qkv(SplittableRandom rnd, Case c) {
        Tensor q = Tensors.random(rnd, c.dtype(), c.batch(), c.queryHeads(), c.queryLen(), c.headDim());
        Tensor k = Tensors.random(rnd, c.dtype(), c.batch(), c.kvHeads(), c.keyLen(), c.headDim());
        return new Qkv(q, k, Tensors.random(rnd, c.dtype(), c.batch(), c.kvHeads(), c.keyLen(), c.valueDim()));
    }

    /** Random q, k, v and dOut; out and LSE from {@code forward}. */
    public static Inputs inputs(SplittableRandom rnd, Case c, AttentionBackend forward) {
        Qkv qkv = qkv(rnd, c);
        Tensor q = qkv.q();
        Tensor k = qkv.k();
        Tensor v = qkv.v();
        Tensor dOut = Tensors.random(rnd, c.dtype(), c.batch(), c.queryHeads(), c.queryLen(), c.valueDim());
        Tensor out = Tensor.allocate(c.dtype(), c.batch(), c.queryHeads(), c.queryLen(), c.valueDim());
        Tensor lse = Tensor.allocate(DType.F32, c.batch(), c.queryHeads(), c.queryLen(), 1);
        forward.forward(q, k, v, out, lse, c.options());
        return new Inputs(q, k, v, out, lse, dOut);
    }

    /** Gradient tensors of {@code dtype} shaped like q, k, v, filled with NaN. */
    public static Gradients poisoned(Inputs in, DType dtype) {
        Gradients g = new Gradients(like(in.q(), dtype), like(in.k(), dtype), like(in.v(), dtype));
        g.dq().fill(Float.NaN);
        g.dk().fill(Float.NaN);
        g.dv().fill(Float.NaN);
        return g;
    }

    /** Runs {@code backend}'s backward into fresh NaN-poisoned gradients of {@code dtype}. */
    public static Gradients backward(AttentionBackend backend, Inputs in, AttentionOptions options, DType dtype) {
        Gradients g = poisoned(in, dtype);
        backend.backward(new BackwardInputs(in.q(), in.k(), in.v(), in.out(), in.dOut(), in.lse()), g, options);
        return g;
    }

    /**
     * Asserts that {@code backend}'s gradients of case {@code c} (out and LSE from its own forward) are within
     * {@code bound} of the reference's F32 gradients.
     */
    public static void assertMatchesReference(AttentionBackend backend, Case c, SplittableRandom rnd, double bound) {
        Inputs in = inputs(rnd, c, backend);
        Gradients actual = backward(backend, in, c.options(), c.dtype());
        Gradients expected = backward(Backends.get("reference"), in, c.options(), DType.F32);
        double error = error(actual, expected);
        assertTrue(error < bound, c + ": error " + error + " (bound " + bound + ")");
    }

    /** The largest of the contract's errors over dq, dk and dv (infinite when any holds NaN). */
    public static double error(Gradients actual, Gradients expected) {
        return Math.max(
                Accuracy.relativeError(actual.dq(), expected.dq()),
                Math.max(
                        Accuracy.relativeError(actual.dk(), expected.dk()),
                        Accuracy.relativeError(actual.dv(), expected.dv())));
    }

    public static Tensor like(Tensor t, DType dtype) {
        return Tensor.allocate(dtype, t.batch(), t.heads(), t.seqLen(), t.headDim());
    }
}
