package dev.aule.examples;

import dev.aule.Attention;
import dev.aule.AttentionOptions;
import dev.aule.AttentionResult;
import dev.aule.Gradients;
import dev.aule.Tensor;
import dev.aule.examples.TrainDemo.Matrices;
import dev.aule.serving.Rope;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.SplittableRandom;

/**
 * A small decoder-only (causal) transformer language model with every backward written out, except
 * attention's, which is the library's: pre-norm blocks with RMSNorm, rotary position embedding through
 * {@link Rope#apply} and {@link Rope#applyBackward}, causal attention through
 * {@link Attention#forwardWithLse} and {@link Attention#backward}, a GELU MLP, and an untied output
 * projection.
 *
 * <pre>
 *   x       = embedding[token]                                              [rows = batch * seq][model]
 *   a block:  a = rmsnorm(x) g1;  q, k, v = a Wq, a Wk, a Wv;  q, k = rope(q), rope(k)   (per head)
 *             x = x + drop(causalAttention(q, k, v) Wo)
 *             x = x + drop(gelu(rmsnorm(x) g2 W1) W2)
 *   logits  = rmsnorm(x) gF U;  loss = mean cross-entropy of the next token at every position
 * </pre>
 *
 * <p>{@code drop} is inverted dropout on each block's two residual branches (plain Java, training only).
 * Attention's own options (causal, and attention dropout where the build has it) come from the caller,
 * who passes the same options to a step's forward and backward.
 */
final class TinyTransformer {
    /**
     * The model's sizes.
     *
     * @param vocab tokens
     * @param model the residual width, a multiple of {@code heads}
     * @param heads attention heads; the head dim {@code model / heads} must be even (RoPE rotates pairs)
     * @param layers blocks
     * @param hidden the MLP's inner width
     * @param seq the longest context (RoPE's table covers it)
     */
    record Shape(int vocab, int model, int heads, int layers, int hidden, int seq) {
        Shape {
            positive("vocab", vocab);
            positive("model", model);
            positive("heads", heads);
            positive("layers", layers);
            positive("hidden", hidden);
            positive("seq", seq);
            if (model % heads != 0 || (model / heads) % 2 != 0) {
                throw new IllegalArgumentException(
                        "model: must be heads " + heads + " times an even head dim, got " + model);
            }
        }

        int headDim() {
            return model / heads;
        }

        private static void positive(String name, int value) {
            if (value < 1) {
                throw new IllegalArgumentException(name + ": must be >= 1, got " + value);
            }
        }
    }

    private static final float NORM_EPSILON = 1e-5f;

    final Shape shape;
    private final Rope rope;
    private final List<Param> params = new ArrayList<>();
    private final Param embedding;
    private final Block[] blocks;
    private final Param finalNorm;
    private final Param unembed;

    /** One block's parameters. */
    private record Block(Param norm1, Param wq, Param wk, Param wv, Param wo, Param norm2, Param w1, Param w2) {}

    TinyTransformer(Shape shape, long seed) {
        this.shape = shape;
        this.rope = Rope.of(shape.headDim(), shape.seq(), 10000, Rope.Style.NEOX);
        SplittableRandom rnd = new SplittableRandom(seed);
        int m = shape.model();
        float in = (float) (1 / Math.sqrt(m));
        // Residual branches start small so the stack starts near the identity (GPT-2's 1/sqrt(2 layers)).
        float residual = (float) (in / Math.sqrt(2.0 * shape.layers()));
        embedding = param("embedding", shape.vocab() * m, 0.5f, rnd, false);
        blocks = new Block[shape.layers()];
        for (int l = 0; l < blocks.length; l++) {
            String p = "block" + l + ".";
            blocks[l] = new Block(
                    ones(p + "norm1", m),
                    param(p + "wq", m * m, in, rnd, true),
                    param(p + "wk", m * m, in, rnd, true),
                    param(p + "wv", m * m, in, rnd, true),
                    param(p + "wo", m * m, residual, rnd, true),
                    ones(p + "norm2", m),
                    param(p + "w1", m * shape.hidden(), in, rnd, true),
                    param(
                            p + "w2",
                            shape.hidden() * m,
                            (float) (residual * Math.sqrt(m / (double) shape.hidden())),
                            rnd,
                            true));
        }
        finalNorm = ones("finalNorm", m);
        unembed = param("unembed", m * shape.vocab(), in, rnd, true);
    }

    /** {@return the parameters, in a fixed order} */
    List<Param> params() {
        return Collections.unmodifiableList(params);
    }

    /** {@return the number of trainable values} */
    long size() {
        return params.stream().mapToLong(p -> p.value.length).sum();
    }

    /** What a block's backward needs from its forward. */
    private static final class BlockCache {
        float[] xIn;
        float[] r1;
        float[] a;
        float[] q; // rotated
        float[] k; // rotated
        float[] v;
        AttentionResult attention;
        float[] o;
        float[] mask1;
        float[] xMid;
        float[] r2;
        float[] b;
        float[] u;
        float[] g;
        float[] mask2;
    }

    /** What the backward needs from the forward. */
    static final class Pass {
        final int batch;
        final int seq;
        final int[] inputs;
        final int[] targets;
        final List<BlockCache> blocks = new ArrayList<>();
        float[] xLast;
        float[] rFinal;
        float[] f;
        /** Softmax probabilities {@code [rows][vocab]}. */
        float[] probabilities;
        /** The mean cross-entropy. */
        double loss;

        Pass(int batch, int seq, int[] inputs, int[] targets) {
            this.batch = batch;
            this.seq = seq;
            this.inputs = inputs;
            this.targets = targets;
        }
    }

    /**
     * The forward pass of {@code batch} sequences of {@code seq} tokens ({@code inputs}, row-major), scored
     * against {@code targets} when not null.
     *
     * @param dropout the residual dropout probability, 0 for evaluation
     * @param rnd draws the dropout masks (unused when {@code dropout} is 0)
     */
    Pass forward(
            int[] inputs,
            int[] targets,
            int batch,
            int seq,
            AttentionOptions options,
            float dropout,
            SplittableRandom rnd) {
        if (seq < 1 || seq > shape.seq() || inputs.length != batch * seq) {
            throw new IllegalArgumentException("inputs: must be " + batch + " rows of 1.." + shape.seq()
                    + " tokens, got " + inputs.length + " tokens for seq " + seq);
        }
        int m = shape.model();
        int rows = batch * seq;
        Pass pass = new Pass(batch, seq, inputs, targets);
        float[] x = new float[rows * m];
        for (int r = 0; r < rows; r++) {
            System.arraycopy(embedding.value, inputs[r] * m, x, r * m, m);
        }
        for (Block blk : blocks) {
            BlockCache c = new BlockCache();
            c.xIn = x;
            c.r1 = new float[rows];
            c.a = rmsNorm(x, blk.norm1().value, rows, c.r1);
            c.q = Matrices.multiply(c.a, blk.wq().value, rows, m, m);
            c.k = Matrices.multiply(c.a, blk.wk().value, rows, m, m);
            c.v = Matrices.multiply(c.a, blk.wv().value, rows, m, m);
            rope.apply(heads(c.q, batch, seq), 0); // in place, through the BSHD view
            rope.apply(heads(c.k, batch, seq), 0);
            c.attention = Attention.forwardWithLse(
                    heads(c.q, batch, seq), heads(c.k, batch, seq), heads(c.v, batch, seq), options);
            c.o = rowsOf(c.attention.out(), batch, seq);
            float[] attended = Matrices.multiply(c.o, blk.wo().value, rows, m, m);
            c.mask1 = dropoutMask(attended.length, dropout, rnd);
            c.xMid = residual(x, attended, c.mask1);
            c.r2 = new float[rows];
            c.b = rmsNorm(c.xMid, blk.norm2().value, rows, c.r2);
            c.u = Matrices.multiply(c.b, blk.w1().value, rows, m, shape.hidden());
            c.g = new float[c.u.length];
            for (int i = 0; i < c.u.length; i++) {
                c.g[i] = gelu(c.u[i]);
            }
            float[] mlp = Matrices.multiply(c.g, blk.w2().value, rows, shape.hidden(), m);
            c.mask2 = dropoutMask(mlp.length, dropout, rnd);
            x = residual(c.xMid, mlp, c.mask2);
            pass.blocks.add(c);
        }
        pass.xLast = x;
        pass.rFinal = new float[rows];
        pass.f = rmsNorm(x, finalNorm.value, rows, pass.rFinal);
        float[] logits = Matrices.multiply(pass.f, unembed.value, rows, m, shape.vocab());
        pass.probabilities = softmax(logits, rows, shape.vocab());
        if (targets != null) {
            double loss = 0;
            for (int r = 0; r < rows; r++) {
                loss -= Math.log(Math.max(pass.probabilities[r * shape.vocab() + targets[r]], 1e-30f));
            }
            pass.loss = loss / rows;
        }
        return pass;
    }

    /** Accumulates the gradient of {@code pass.loss} into every parameter's {@code grad}. */
    void backward(Pass pass, AttentionOptions options) {
        int m = shape.model();
        int vocab = shape.vocab();
        int hidden = shape.hidden();
        int rows = pass.batch * pass.seq;
        // d loss / d logits = (p - onehot(target)) / rows.
        float[] dLogits = new float[rows * vocab];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < vocab; c++) {
                dLogits[r * vocab + c] = pass.probabilities[r * vocab + c] / rows;
            }
            dLogits[r * vocab + pass.targets[r]] -= 1f / rows;
        }
        Matrices.addTransposedTimes(pass.f, dLogits, rows, m, vocab, unembed.grad);
        float[] df = timesTransposed(dLogits, unembed.value, rows, vocab, m);
        float[] dx = rmsNormBackward(pass.xLast, finalNorm, rows, pass.rFinal, df);
        for (int l = blocks.length - 1; l >= 0; l--) {
            Block blk = blocks[l];
            BlockCache c = pass.blocks.get(l);
            // x = xMid + drop(gelu(b W1) W2)
            float[] dMlp = masked(dx, c.mask2);
            Matrices.addTransposedTimes(c.g, dMlp, rows, hidden, m, blk.w2().grad);
            float[] du = timesTransposed(dMlp, blk.w2().value, rows, m, hidden);
            for (int i = 0; i < du.length; i++) {
                du[i] *= geluDerivative(c.u[i]);
            }
            Matrices.addTransposedTimes(c.b, du, rows, m, hidden, blk.w1().grad);
            float[] db = timesTransposed(du, blk.w1().value, rows, hidden, m);
            float[] dxMid = rmsNormBackward(c.xMid, blk.norm2(), rows, c.r2, db);
            for (int i = 0; i < dxMid.length; i++) {
                dxMid[i] += dx[i];
            }
            // xMid = xIn + drop(attention(rope(a Wq), rope(a Wk), a Wv) Wo)
            float[] dAttended = masked(dxMid, c.mask1);
            Matrices.addTransposedTimes(c.o, dAttended, rows, m, m, blk.wo().grad);
            float[] dO = timesTransposed(dAttended, blk.wo().value, rows, m, m);
            Gradients g = Attention.backward(
                    heads(c.q, pass.batch, pass.seq),
                    heads(c.k, pass.batch, pass.seq),
                    heads(c.v, pass.batch, pass.seq),
                    c.attention.out(),
                    heads(dO, pass.batch, pass.seq),
                    c.attention.lse(),
                    options);
            // The gradients reach the rotated q and k; RoPE's backward takes them to the projections' outputs.
            rope.applyBackward(g.dq(), 0);
            rope.applyBackward(g.dk(), 0);
            float[] da = new float[rows * m];
            Param[] weights = {blk.wq(), blk.wk(), blk.wv()};
            Tensor[] grads = {g.dq(), g.dk(), g.dv()};
            for (int j = 0; j < 3; j++) {
                float[] dOut = rowsOf(grads[j], pass.batch, pass.seq);
                Matrices.addTransposedTimes(c.a, dOut, rows, m, m, weights[j].grad);
                float[] part = timesTransposed(dOut, weights[j].value, rows, m, m);
                for (int i = 0; i < da.length; i++) {
                    da[i] += part[i];
                }
            }
            float[] dxIn = rmsNormBackward(c.xIn, blk.norm1(), rows, c.r1, da);
            for (int i = 0; i < dxIn.length; i++) {
                dxIn[i] += dxMid[i];
            }
            dx = dxIn;
        }
        for (int r = 0; r < rows; r++) {
            int at = pass.inputs[r] * m;
            for (int c = 0; c < m; c++) {
                embedding.grad[at + c] += dx[r * m + c];
            }
        }
    }

    /** {@code rows} rows of {@code x} normalised by their root mean square times {@code gain}; {@code r} gets 1/rms. */
    private float[] rmsNorm(float[] x, float[] gain, int rows, float[] r) {
        int m = shape.model();
        float[] y = new float[x.length];
        for (int i = 0; i < rows; i++) {
            double squares = 0;
            for (int c = 0; c < m; c++) {
                squares += x[i * m + c] * x[i * m + c];
            }
            r[i] = (float) (1 / Math.sqrt(squares / m + NORM_EPSILON));
            for (int c = 0; c < m; c++) {
                y[i * m + c] = x[i * m + c] * r[i] * gain[c];
            }
        }
        return y;
    }

    /**
     * The gradient with respect to the input of {@link #rmsNorm} given {@code dy}; accumulates the gain's.
     * With {@code h = dy * gain}: {@code dx = r (h - x r^2 mean(h x))}.
     */
    private float[] rmsNormBackward(float[] x, Param gain, int rows, float[] r, float[] dy) {
        int m = shape.model();
        float[] dx = new float[x.length];
        for (int i = 0; i < rows; i++) {
            double dot = 0;
            for (int c = 0; c < m; c++) {
                int at = i * m + c;
                gain.grad[c] += dy[at] * x[at] * r[i];
                dot += (double) dy[at] * gain.value[c] * x[at];
            }
            float correction = (float) (r[i] * r[i] * dot / m);
            for (int c = 0; c < m; c++) {
                int at = i * m + c;
                dx[at] = r[i] * (dy[at] * gain.value[c] - x[at] * correction);
            }
        }
        return dx;
    }

    private static final float GELU_C = (float) Math.sqrt(2 / Math.PI);

    /** GELU, tanh approximation (GPT-2's). */
    static float gelu(float u) {
        return 0.5f * u * (1 + (float) Math.tanh(GELU_C * (u + 0.044715f * u * u * u)));
    }

    static float geluDerivative(float u) {
        float t = (float) Math.tanh(GELU_C * (u + 0.044715f * u * u * u));
        return 0.5f * (1 + t) + 0.5f * u * (1 - t * t) * GELU_C * (1 + 3 * 0.044715f * u * u);
    }

    /** Inverted dropout: each entry 0 with probability {@code p}, else {@code 1 / (1 - p)}; null when {@code p} is 0. */
    private static float[] dropoutMask(int n, float p, SplittableRandom rnd) {
        if (p == 0) {
            return null;
        }
        float[] mask = new float[n];
        float keep = 1 / (1 - p);
        for (int i = 0; i < n; i++) {
            mask[i] = rnd.nextDouble() < p ? 0f : keep;
        }
        return mask;
    }

    private static float[] residual(float[] x, float[] branch, float[] mask) {
        float[] y = new float[x.length];
        for (int i = 0; i < y.length; i++) {
            y[i] = x[i] + (mask == null ? branch[i] : branch[i] * mask[i]);
        }
        return y;
    }

    private static float[] masked(float[] d, float[] mask) {
        if (mask == null) {
            return d;
        }
        float[] y = new float[d.length];
        for (int i = 0; i < y.length; i++) {
            y[i] = d[i] * mask[i];
        }
        return y;
    }

    /** Row-wise softmax of {@code [rows][cols]}, in place. */
    private static float[] softmax(float[] logits, int rows, int cols) {
        for (int r = 0; r < rows; r++) {
            float max = Float.NEGATIVE_INFINITY;
            for (int c = 0; c < cols; c++) {
                max = Math.max(max, logits[r * cols + c]);
            }
            double sum = 0;
            for (int c = 0; c < cols; c++) {
                float e = (float) Math.exp(logits[r * cols + c] - max);
                logits[r * cols + c] = e;
                sum += e;
            }
            float inv = (float) (1 / sum);
            for (int c = 0; c < cols; c++) {
                logits[r * cols + c] *= inv;
            }
        }
        return logits;
    }

    /**
     * {@code a[n][m] w[k][m]^T}: the input gradient of a layer {@code x w} with {@code w [k][m]}. Transposes
     * {@code w} once so the product runs with unit-stride inner loops.
     */
    private static float[] timesTransposed(float[] a, float[] w, int n, int m, int k) {
        float[] wt = new float[w.length];
        for (int x = 0; x < k; x++) {
            for (int j = 0; j < m; j++) {
                wt[j * k + x] = w[x * m + j];
            }
        }
        return Matrices.multiply(a, wt, n, m, k);
    }

    /** {@code [batch * seq][model]} viewed as attention's {@code [batch, heads, seq, headDim]}. */
    private Tensor heads(float[] rows, int batch, int seq) {
        return Tensor.ofBshd(rows, batch, seq, shape.heads(), shape.headDim());
    }

    /** A {@code [batch, heads, seq, headDim]} tensor back to {@code [batch * seq][model]}. */
    private float[] rowsOf(Tensor t, int batch, int seq) {
        int m = shape.model();
        float[] rows = new float[batch * seq * m];
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < shape.heads(); h++) {
                for (int s = 0; s < seq; s++) {
                    t.readRow(b, h, s, rows, (b * seq + s) * m + h * shape.headDim());
                }
            }
        }
        return rows;
    }

    private Param param(String name, int size, float std, SplittableRandom rnd, boolean decays) {
        Param p = new Param(name, size, decays);
        for (int i = 0; i < size; i++) {
            p.value[i] = (float) (rnd.nextGaussian() * std);
        }
        params.add(p);
        return p;
    }

    private Param ones(String name, int size) {
        Param p = new Param(name, size, false);
        java.util.Arrays.fill(p.value, 1f);
        params.add(p);
        return p;
    }
}
