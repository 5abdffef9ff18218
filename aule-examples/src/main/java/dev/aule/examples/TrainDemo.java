package dev.aule.examples;

import dev.aule.Attention;
import dev.aule.AttentionOptions;
import dev.aule.AttentionResult;
import dev.aule.Backends;
import dev.aule.Gradients;
import dev.aule.Tensor;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Trains a one-layer causal attention model to copy: each sequence is {@code half} random tokens
 * followed by the same tokens again, and the model learns to predict the second half, which it can
 * only do by attending {@code half - 1} positions back. Everything but attention is written out
 * here in plain loops: embeddings, projections, cross-entropy and Adam; attention runs through
 * {@link Attention#forwardWithLse} and {@link Attention#backward}.
 *
 * <pre>
 *   x      = tokenEmbedding[token] + positionEmbedding[position]          [batch, seq, model]
 *   q,k,v  = x Wq, x Wk, x Wv, split into heads                            (BSHD views, no copies)
 *   h      = x + causalAttention(q, k, v) Wo
 *   loss   = cross-entropy(h U + c) over the positions that predict the copied half
 * </pre>
 */
public final class TrainDemo {
    /** Sizes and the optimiser's settings. */
    public record Config(int vocab, int half, int model, int heads, int batch, float learningRate, long seed) {
        public static Config defaults() {
            return new Config(16, 16, 64, 4, 16, 3e-3f, 1);
        }

        int seq() {
            return 2 * half;
        }

        int headDim() {
            return model / heads;
        }
    }

    private static final AttentionOptions CAUSAL =
            AttentionOptions.builder().causal(true).build();

    private final Config cfg;
    private final SplittableRandom rnd;
    private final List<Param> params = new ArrayList<>();
    private final Param tokenEmbedding;
    private final Param positionEmbedding;
    private final Param wq;
    private final Param wk;
    private final Param wv;
    private final Param wo;
    private final Param unembed;
    private final Param unembedBias;
    private int step;

    public TrainDemo(Config cfg) {
        this.cfg = cfg;
        this.rnd = new SplittableRandom(cfg.seed());
        int m = cfg.model();
        float projection = (float) (1 / Math.sqrt(m));
        tokenEmbedding = param(cfg.vocab() * m, 1f);
        positionEmbedding = param(cfg.seq() * m, 1f);
        wq = param(m * m, projection);
        wk = param(m * m, projection);
        wv = param(m * m, projection);
        wo = param(m * m, projection);
        unembed = param(m * cfg.vocab(), projection);
        unembedBias = param(cfg.vocab(), 0f);
    }

    public static void main(String[] args) {
        run(args.length > 0 ? Integer.parseInt(args[0]) : 300, System.out);
    }

    /** Trains for {@code steps} Adam steps with the default configuration, printing progress to {@code out}. */
    public static void run(int steps, PrintStream out) {
        Config cfg = Config.defaults();
        out.printf(
                "TrainDemo: copy task, %d tokens then the same %d again (vocab %d); one causal attention layer, "
                        + "model %d, %d heads, batch %d, Adam lr %.0e; attention on backend '%s'%n",
                cfg.half(),
                cfg.half(),
                cfg.vocab(),
                cfg.model(),
                cfg.heads(),
                cfg.batch(),
                cfg.learningRate(),
                Backends.selected().name());
        TrainDemo demo = new TrainDemo(cfg);
        long start = System.nanoTime();
        double running = 0;
        int every = 25;
        for (int s = 1; s <= steps; s++) {
            running += demo.trainStep();
            if (s % every == 0 || s == steps) {
                int n = s % every == 0 ? every : s % every;
                out.printf("step %4d  loss %.4f  (%.1f s)%n", s, running / n, (System.nanoTime() - start) / 1e9);
                running = 0;
            }
        }
        out.printf(
                "accuracy on the copied half of 1024 fresh sequences: %.1f%% (chance %.1f%%)%n",
                100 * demo.accuracy(1024), 100.0 / cfg.vocab());
    }

    /** One Adam step on a fresh batch; returns the batch's loss before the step. */
    public double trainStep() {
        int[] tokens = sample();
        Forward f = forward(tokens);
        backward(f);
        step++;
        for (Param p : params) {
            p.adam(cfg.learningRate(), step);
        }
        return f.loss;
    }

    /** Share of the copied half's tokens predicted right (argmax) on fresh sequences. */
    public double accuracy(int sequences) {
        int right = 0;
        int total = 0;
        for (int done = 0; done < sequences; done += cfg.batch()) {
            Forward f = forward(sample());
            for (int b = 0; b < cfg.batch(); b++) {
                for (int t = cfg.half() - 1; t < cfg.seq() - 1; t++) {
                    int row = (b * cfg.seq() + t) * cfg.vocab();
                    int best = 0;
                    for (int c = 1; c < cfg.vocab(); c++) {
                        if (f.logits[row + c] > f.logits[row + best]) {
                            best = c;
                        }
                    }
                    right += best == f.tokens[b * cfg.seq() + t + 1] ? 1 : 0;
                    total++;
                }
            }
        }
        return (double) right / total;
    }

    /** {@code batch} sequences: {@code half} random tokens, then the same again. */
    private int[] sample() {
        int[] tokens = new int[cfg.batch() * cfg.seq()];
        for (int b = 0; b < cfg.batch(); b++) {
            for (int t = 0; t < cfg.half(); t++) {
                int token = rnd.nextInt(cfg.vocab());
                tokens[b * cfg.seq() + t] = token;
                tokens[b * cfg.seq() + cfg.half() + t] = token;
            }
        }
        return tokens;
    }

    /** What the backward pass needs from the forward. */
    private static final class Forward {
        int[] tokens;
        float[] x; // [rows][model], rows = batch * seq
        float[] q;
        float[] k;
        float[] v;
        AttentionResult attention; // out [batch, heads, seq, headDim]
        float[] o; // attention output as [rows][model]
        float[] h; // x + o Wo
        float[] logits; // [rows][vocab], softmax probabilities after the loss
        double loss;
    }

    private Forward forward(int[] tokens) {
        int m = cfg.model();
        int rows = cfg.batch() * cfg.seq();
        Forward f = new Forward();
        f.tokens = tokens;
        f.x = new float[rows * m];
        for (int r = 0; r < rows; r++) {
            int pos = r % cfg.seq();
            for (int c = 0; c < m; c++) {
                f.x[r * m + c] = tokenEmbedding.value[tokens[r] * m + c] + positionEmbedding.value[pos * m + c];
            }
        }
        f.q = Matrices.multiply(f.x, wq.value, rows, m, m);
        f.k = Matrices.multiply(f.x, wk.value, rows, m, m);
        f.v = Matrices.multiply(f.x, wv.value, rows, m, m);
        // [rows][model] is [batch][seq][heads][headDim]: BSHD views, no copies.
        f.attention = Attention.forwardWithLse(heads(f.q), heads(f.k), heads(f.v), CAUSAL);
        f.o = rowsOf(f.attention.out());
        f.h = Matrices.multiply(f.o, wo.value, rows, m, m);
        for (int i = 0; i < f.h.length; i++) {
            f.h[i] += f.x[i];
        }
        f.logits = Matrices.multiply(f.h, unembed.value, rows, m, cfg.vocab());
        for (int i = 0; i < f.logits.length; i++) {
            f.logits[i] += unembedBias.value[i % cfg.vocab()];
        }
        f.loss = softmaxCrossEntropy(f);
        return f;
    }

    /**
     * Turns logits into probabilities in place and returns the mean cross-entropy over the positions
     * {@code half - 1 .. seq - 2}, each predicting the next token (the copied half).
     */
    private double softmaxCrossEntropy(Forward f) {
        int vocab = cfg.vocab();
        double loss = 0;
        int counted = 0;
        for (int b = 0; b < cfg.batch(); b++) {
            for (int t = 0; t < cfg.seq(); t++) {
                int row = (b * cfg.seq() + t) * vocab;
                float max = Float.NEGATIVE_INFINITY;
                for (int c = 0; c < vocab; c++) {
                    max = Math.max(max, f.logits[row + c]);
                }
                double sum = 0;
                for (int c = 0; c < vocab; c++) {
                    float e = (float) Math.exp(f.logits[row + c] - max);
                    f.logits[row + c] = e;
                    sum += e;
                }
                for (int c = 0; c < vocab; c++) {
                    f.logits[row + c] /= (float) sum;
                }
                if (predictsCopy(t)) {
                    loss -= Math.log(Math.max(f.logits[row + f.tokens[b * cfg.seq() + t + 1]], 1e-30f));
                    counted++;
                }
            }
        }
        return loss / counted;
    }

    private boolean predictsCopy(int t) {
        return t >= cfg.half() - 1 && t < cfg.seq() - 1;
    }

    private void backward(Forward f) {
        int m = cfg.model();
        int vocab = cfg.vocab();
        int rows = cfg.batch() * cfg.seq();
        int counted = cfg.batch() * cfg.half();
        // d loss / d logits = (p - onehot) / counted on the scored positions, 0 elsewhere.
        float[] dLogits = new float[rows * vocab];
        for (int r = 0; r < rows; r++) {
            int t = r % cfg.seq();
            if (!predictsCopy(t)) {
                continue;
            }
            for (int c = 0; c < vocab; c++) {
                dLogits[r * vocab + c] = f.logits[r * vocab + c] / counted;
            }
            dLogits[r * vocab + f.tokens[r + 1]] -= 1f / counted;
        }
        Matrices.addTransposedTimes(f.h, dLogits, rows, m, vocab, unembed.grad);
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < vocab; c++) {
                unembedBias.grad[c] += dLogits[r * vocab + c];
            }
        }
        float[] dh = Matrices.multiplyTransposed(dLogits, unembed.value, rows, vocab, m);
        // h = x + o Wo: dx starts as dh (the residual), dWo = o^T dh, do = dh Wo^T.
        float[] dx = dh.clone();
        Matrices.addTransposedTimes(f.o, dh, rows, m, m, wo.grad);
        float[] dO = Matrices.multiplyTransposed(dh, wo.value, rows, m, m);

        Gradients g = Attention.backward(
                heads(f.q), heads(f.k), heads(f.v), f.attention.out(), heads(dO), f.attention.lse(), CAUSAL);
        List<Projection> projections = List.of(
                new Projection(wq, rowsOf(g.dq())),
                new Projection(wk, rowsOf(g.dk())),
                new Projection(wv, rowsOf(g.dv())));
        for (Projection p : projections) {
            Matrices.addTransposedTimes(f.x, p.dOutput(), rows, m, m, p.weight().grad);
            float[] dxPart = Matrices.multiplyTransposed(p.dOutput(), p.weight().value, rows, m, m);
            for (int i = 0; i < dx.length; i++) {
                dx[i] += dxPart[i];
            }
        }
        for (int r = 0; r < rows; r++) {
            int pos = r % cfg.seq();
            for (int c = 0; c < m; c++) {
                tokenEmbedding.grad[f.tokens[r] * m + c] += dx[r * m + c];
                positionEmbedding.grad[pos * m + c] += dx[r * m + c];
            }
        }
    }

    /** One of the q, k, v projections of x and the gradient of its output, {@code [batch * seq][model]}. */
    private record Projection(Param weight, float[] dOutput) {}

    /** {@code [batch * seq][model]} viewed as attention's {@code [batch, heads, seq, headDim]}. */
    private Tensor heads(float[] rows) {
        return Tensor.ofBshd(rows, cfg.batch(), cfg.seq(), cfg.heads(), cfg.headDim());
    }

    /** A {@code [batch, heads, seq, headDim]} tensor back to {@code [batch * seq][model]}. */
    private float[] rowsOf(Tensor t) {
        float[] rows = new float[cfg.batch() * cfg.seq() * cfg.model()];
        for (int b = 0; b < cfg.batch(); b++) {
            for (int hd = 0; hd < cfg.heads(); hd++) {
                for (int s = 0; s < cfg.seq(); s++) {
                    t.readRow(b, hd, s, rows, (b * cfg.seq() + s) * cfg.model() + hd * cfg.headDim());
                }
            }
        }
        return rows;
    }

    private Param param(int size, float std) {
        Param p = new Param(size);
        for (int i = 0; i < size; i++) {
            p.value[i] = (float) (rnd.nextGaussian() * std);
        }
        params.add(p);
        return p;
    }

    /** A parameter, its gradient and Adam's two moment estimates. */
    private static final class Param {
        private static final float BETA1 = 0.9f;
        private static final float BETA2 = 0.999f;
        private static final float EPSILON = 1e-8f;

        final float[] value;
        final float[] grad;
        final float[] m;
        final float[] v;

        Param(int size) {
            value = new float[size];
            grad = new float[size];
            m = new float[size];
            v = new float[size];
        }

        /** One Adam update from the accumulated gradient, which it then clears. */
        void adam(float lr, int step) {
            double correction1 = 1 - Math.pow(BETA1, step);
            double correction2 = 1 - Math.pow(BETA2, step);
            for (int i = 0; i < value.length; i++) {
                m[i] = BETA1 * m[i] + (1 - BETA1) * grad[i];
                v[i] = BETA2 * v[i] + (1 - BETA2) * grad[i] * grad[i];
                double mHat = m[i] / correction1;
                double vHat = v[i] / correction2;
                value[i] -= (float) (lr * mHat / (Math.sqrt(vHat) + EPSILON));
                grad[i] = 0f;
            }
        }
    }

    /** Row-major matrix products in plain loops (the model is small; attention is the part that matters). */
    static final class Matrices {
        private Matrices() {}

        /** {@code a[n][k] b[k][m]}. */
        static float[] multiply(float[] a, float[] b, int n, int k, int m) {
            float[] c = new float[n * m];
            for (int i = 0; i < n; i++) {
                for (int x = 0; x < k; x++) {
                    float aix = a[i * k + x];
                    for (int j = 0; j < m; j++) {
                        c[i * m + j] += aix * b[x * m + j];
                    }
                }
            }
            return c;
        }

        /** {@code a[n][m] b[k][m]^T}, an {@code [n][k]} result. */
        static float[] multiplyTransposed(float[] a, float[] b, int n, int m, int k) {
            float[] c = new float[n * k];
            for (int i = 0; i < n; i++) {
                for (int x = 0; x < k; x++) {
                    float sum = 0;
                    for (int j = 0; j < m; j++) {
                        sum += a[i * m + j] * b[x * m + j];
                    }
                    c[i * k + x] = sum;
                }
            }
            return c;
        }

        /** {@code c[k][m] += a[n][k]^T b[n][m]}: a weight's gradient from its input and its output's gradient. */
        static void addTransposedTimes(float[] a, float[] b, int n, int k, int m, float[] c) {
            for (int i = 0; i < n; i++) {
                for (int x = 0; x < k; x++) {
                    float aix = a[i * k + x];
                    for (int j = 0; j < m; j++) {
                        c[x * m + j] += aix * b[i * m + j];
                    }
                }
            }
        }
    }
}
