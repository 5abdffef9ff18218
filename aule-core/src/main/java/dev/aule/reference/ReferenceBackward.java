package dev.aule.reference;

import dev.aule.AttentionOptions;
import dev.aule.Gradients;
import dev.aule.Tensor;
import dev.aule.spi.AttentionShape;
import dev.aule.spi.BackwardInputs;
import dev.aule.spi.TensorChecks;
import dev.aule.spi.Visibility;

import java.util.Arrays;
import java.util.stream.IntStream;

/**
 * The oracle for gradients: attention's backward in float64, straight from the semantics.
 *
 * <p>It works on one KV head and its query group at a time (the unit GQA gradients sum over) and
 * recomputes the probabilities from its own float64 forward, never from the LSE a caller passes:
 * for each query row {@code i} of head {@code h},
 * <pre>
 *   p_ij   = softmax over visible j of s_ij      s_ij = mod(cap(scale q_i.k_j) - m_h |i + offset - j| + bias_ij)
 *   dv_j  += p_ij dOut_i                           dp_ij = dOut_i . v_j
 *   ds_ij  = p_ij (dp_ij - delta_i) cap'_ij mod'_ij   delta_i = sum_j p_ij dp_ij
 *   dq_i   = scale sum_j ds_ij k_j                 dk_j += scale ds_ij q_i
 * </pre>
 * with {@code cap(x) = c tanh(x / c)} and {@code cap' = 1 - tanh^2(x / c)} under softcap (1 without),
 * {@code mod} the ScoreMod and {@code mod'} its derivative (identity and 1 without); see {@link Scores}.
 * ALiBi's term and the bias do not depend on q or k, so they add no gradient. Masked pairs and rows
 * that see no key contribute nothing.
 *
 * <p>The float64 arrays are row-major: a query group {@code [G][Sq][D]}, keys {@code [Sk][D]},
 * values {@code [Sk][Dv]}.
 */
final class ReferenceBackward {
    private final AttentionShape shape;
    private final Visibility visibility;
    private final double scale;
    private final Scores scores;

    ReferenceBackward(AttentionShape shape, AttentionOptions options) {
        this(shape, options, 0);
    }

    /** The gradients of a call whose batch entry 0 is batch {@code batchBase} for dropout and per-batch ALiBi. */
    ReferenceBackward(AttentionShape shape, AttentionOptions options, int batchBase) {
        this.shape = shape;
        this.scores = new Scores(shape, options, batchBase);
        this.visibility = scores.visibility();
        this.scale = Scores.scale(options, shape.headDim());
    }

    /** Reads the tensors, computes every gradient in float64 and writes dq, dk, dv (rounded to their dtypes). */
    static void run(AttentionShape shape, AttentionOptions options, BackwardInputs in, Gradients grads) {
        run(shape, options, in, grads, 0);
    }

    /** {@link #run} for a call whose batch entry 0 is batch {@code batchBase} (a packed sequence's index). */
    static void run(AttentionShape shape, AttentionOptions options, BackwardInputs in, Gradients grads, int batchBase) {
        ReferenceBackward reference = new ReferenceBackward(shape, options, batchBase);
        int group = shape.groupSize();
        IntStream items = IntStream.range(0, shape.batch() * shape.kvHeads());
        if (!TensorChecks.anyThreadConfined(
                options, in.q(), in.k(), in.v(), in.out(), in.dOut(), in.lse(), grads.dq(), grads.dk(), grads.dv())) {
            items = items.parallel();
        }
        items.forEach(item -> {
            int b = item / shape.kvHeads();
            int kvHead = item % shape.kvHeads();
            double[][] qs = new double[group][];
            double[][] dOuts = new double[group][];
            double[][] dqs = new double[group][shape.queryLen() * shape.headDim()];
            for (int g = 0; g < group; g++) {
                qs[g] = read(in.q(), b, kvHead * group + g);
                dOuts[g] = read(in.dOut(), b, kvHead * group + g);
            }
            double[] dks = new double[shape.keyLen() * shape.headDim()];
            double[] dvs = new double[shape.keyLen() * shape.valueDim()];
            reference.backward(b, kvHead, qs, read(in.k(), b, kvHead), read(in.v(), b, kvHead), dOuts, dqs, dks, dvs);
            for (int g = 0; g < group; g++) {
                write(grads.dq(), b, kvHead * group + g, dqs[g]);
            }
            write(grads.dk(), b, kvHead, dks);
            write(grads.dv(), b, kvHead, dvs);
        });
    }

    /** Attention output of each query head of the group, {@code [G][Sq][Dv]}: the function the gradients differentiate. */
    double[][] forward(int b, int kvHead, double[][] q, double[] k, double[] v) {
        int dv = shape.valueDim();
        double[][] out = new double[q.length][shape.queryLen() * dv];
        double[] p = new double[shape.keyLen()];
        double[] capSlope = new double[shape.keyLen()];
        for (int g = 0; g < q.length; g++) {
            int head = kvHead * q.length + g;
            for (int i = 0; i < shape.queryLen(); i++) {
                probabilities(b, head, i, q[g], k, p, capSlope);
                long dropRow = scores.dropoutRow(b, head, i);
                for (int j = visibility.first(i); j <= visibility.last(i); j++) {
                    double weight = p[j] * scores.dropoutFactor(dropRow, j);
                    for (int x = 0; x < dv; x++) {
                        out[g][i * dv + x] += weight * v[j * dv + x];
                    }
                }
            }
        }
        return out;
    }

    /** Gradients of one KV head and its query group: overwrites {@code dq}; adds into {@code dk} and {@code dv}, given zeroed. */
    void backward(
            int b,
            int kvHead,
            double[][] q,
            double[] k,
            double[] v,
            double[][] dOut,
            double[][] dq,
            double[] dk,
            double[] dv) {
        int d = shape.headDim();
        int dvDim = shape.valueDim();
        double[] p = new double[shape.keyLen()];
        double[] capSlope = new double[shape.keyLen()];
        double[] dp = new double[shape.keyLen()];
        for (int g = 0; g < q.length; g++) {
            int head = kvHead * q.length + g;
            Arrays.fill(dq[g], 0.0);
            for (int i = 0; i < shape.queryLen(); i++) {
                int first = visibility.first(i);
                int last = visibility.last(i);
                probabilities(b, head, i, q[g], k, p, capSlope);
                long dropRow = scores.dropoutRow(b, head, i);
                double delta = 0;
                // A pair of probability 0 in F32 (hidden, or one whose exp underflows) adds nothing: skipped, so a NaN
                // or an infinity in a key or value a row cannot see never reaches its gradients (0 x NaN).
                for (int j = first; j <= last; j++) {
                    if (p[j] < Float.MIN_NORMAL) {
                        continue;
                    }
                    // Dropout: out = sum p f v with f = keep / (1 - p), so dv gets p f dOut and dP = f dOut . v; a
                    // dropped pair (f = 0) still has a score gradient, -p delta.
                    double kept = scores.dropoutFactor(dropRow, j);
                    if (kept == 0) {
                        dp[j] = 0;
                        continue;
                    }
                    double dot = 0;
                    for (int x = 0; x < dvDim; x++) {
                        dot += dOut[g][i * dvDim + x] * v[j * dvDim + x];
                        dv[j * dvDim + x] += p[j] * kept * dOut[g][i * dvDim + x];
                    }
                    dot *= kept;
                    dp[j] = dot;
                    delta += p[j] * dot;
                }
                for (int j = first; j <= last; j++) {
                    if (p[j] < Float.MIN_NORMAL) {
                        continue;
                    }
                    double ds = p[j] * (dp[j] - delta) * capSlope[j] * scale;
                    for (int x = 0; x < d; x++) {
                        dq[g][i * d + x] += ds * k[j * d + x];
                        dk[j * d + x] += ds * q[g][i * d + x];
                    }
                }
            }
        }
    }

    /**
     * Row {@code i} of query head {@code head}: {@code p[j]} the probabilities of the keys in the visible
     * interval (0 for those a mask or the score hides) and {@code capSlope[j]} the derivative of the final
     * score with respect to {@code scale q.k} there. Entries outside the interval are left as they were and
     * never read. A row that sees no key gets {@code p = 0} throughout.
     */
    private void probabilities(int b, int head, int i, double[] q, double[] k, double[] p, double[] capSlope) {
        int d = shape.headDim();
        int first = visibility.first(i);
        int last = visibility.last(i);
        double[] slope = new double[1];
        double max = Double.NEGATIVE_INFINITY;
        for (int j = first; j <= last; j++) {
            double dot = 0;
            for (int x = 0; x < d; x++) {
                dot += q[i * d + x] * k[j * d + x];
            }
            slope[0] = 0;
            p[j] = scores.score(b, head, i, j, dot, slope);
            capSlope[j] = slope[0];
            max = Math.max(max, p[j]);
        }
        if (max == Double.NEGATIVE_INFINITY) {
            if (first <= last) {
                Arrays.fill(p, first, last + 1, 0.0);
            }
            return;
        }
        // A sink logit is one more term of the softmax's sum, with no value (its own gradient is
        // Attention.sinkGradients); with a saturated (+inf) max it weighs nothing.
        double sink = scores.sink(head);
        double top = max == Double.POSITIVE_INFINITY ? max : Math.max(max, sink);
        double sum = max == Double.POSITIVE_INFINITY ? 0 : Math.exp(sink - top);
        for (int j = first; j <= last; j++) {
            p[j] = Math.exp(p[j] - top);
            sum += p[j];
        }
        for (int j = first; j <= last; j++) {
            p[j] /= sum;
        }
    }

    /** All rows of one head as float64 {@code [seq][dim]}. */
    private static double[] read(Tensor t, int b, int h) {
        float[] row = new float[t.headDim()];
        double[] rows = new double[t.seqLen() * t.headDim()];
        for (int s = 0; s < t.seqLen(); s++) {
            t.readRow(b, h, s, row, 0);
            for (int x = 0; x < row.length; x++) {
                rows[s * row.length + x] = row[x];
            }
        }
        return rows;
    }

    private static void write(Tensor t, int b, int h, double[] rows) {
        float[] row = new float[t.headDim()];
        for (int s = 0; s < t.seqLen(); s++) {
            for (int x = 0; x < row.length; x++) {
                row[x] = (float) rows[s * row.length + x];
            }
            t.writeRow(b, h, s, row, 0);
        }
    }
}
