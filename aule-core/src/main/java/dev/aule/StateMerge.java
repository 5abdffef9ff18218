package dev.aule;

import dev.aule.spi.NamedTensor;
import dev.aule.spi.TensorChecks;

import java.util.List;
import java.util.Objects;

/**
 * Exact combination of attention over disjoint key sets: with partial outputs {@code o_p} and
 * log-sum-exps {@code l_p} of the same queries, the attention over the union of the keys is
 * {@code out = sum_p exp(l_p - L) o_p} with {@code L = log(sum_p exp(l_p))}. Computed in float64
 * from the largest {@code l_p}, so it neither overflows nor underflows; partials with {@code -inf}
 * (no visible key) contribute nothing, and if every partial is empty the row is 0 with {@code -inf}.
 *
 * <p>Validated like every entry point before anything is written: shapes, the F32 LSEs, memory
 * reachable from the calling thread, outputs writable and apart from the partials, and every LSE
 * finite or {@code -inf}. An LSE of {@code +inf} or NaN comes from no forward (a row's LSE is the log
 * of a sum of finite exponentials, or {@code -inf} when it sees no key), so it is rejected; NaN in a
 * partial output propagates to the rows that weigh it, as plain arithmetic would.
 */
final class StateMerge {
    private StateMerge() {}

    static void merge(List<AttentionResult> partials, Tensor out, Tensor lse) {
        Objects.requireNonNull(partials, "partials");
        Objects.requireNonNull(out, "out");
        Objects.requireNonNull(lse, "lse");
        if (partials.isEmpty()) {
            throw new IllegalArgumentException("partials: need at least one (out, lse) pair");
        }
        Tensor first =
                Objects.requireNonNull(partials.getFirst(), "partials[0]").out();
        long[] outShape = first.shape();
        long[] lseShape = {first.batch(), first.heads(), first.seqLen(), 1};
        NamedTensor[] inputs = new NamedTensor[2 * partials.size()];
        for (int p = 0; p < partials.size(); p++) {
            AttentionResult r = Objects.requireNonNull(partials.get(p), "partials[" + p + "]");
            Objects.requireNonNull(r.out(), "partials[" + p + "].out");
            Objects.requireNonNull(r.lse(), "partials[" + p + "].lse");
            requireShape("partials[" + p + "].out", r.out(), outShape);
            requireShape("partials[" + p + "].lse", r.lse(), lseShape);
            if (r.lse().dtype() != DType.F32) {
                throw new IllegalArgumentException("partials[" + p + "].lse: dtype must be F32, got "
                        + r.lse().dtype());
            }
            inputs[2 * p] = new NamedTensor("partials[" + p + "].out", r.out());
            inputs[2 * p + 1] = new NamedTensor("partials[" + p + "].lse", r.lse());
        }
        TensorChecks.checkAccessible(inputs);
        for (int p = 0; p < partials.size(); p++) {
            requireFiniteOrEmpty("partials[" + p + "].lse", partials.get(p).lse());
        }
        requireShape("out", out, outShape);
        requireShape("lse", lse, lseShape);
        if (lse.dtype() != DType.F32) {
            throw new IllegalArgumentException("lse: dtype must be F32, got " + lse.dtype());
        }
        TensorChecks.checkWritable("out", out, inputs);
        TensorChecks.checkWritable("lse", lse, inputs);
        TensorChecks.checkNoOverlap("lse", lse, "out", out);

        int dv = first.headDim();
        int n = partials.size();
        double[] weight = new double[n];
        double[] acc = new double[dv];
        float[] row = new float[dv];
        float[] mergedRow = new float[dv];
        for (int b = 0; b < first.batch(); b++) {
            for (int h = 0; h < first.heads(); h++) {
                for (int s = 0; s < first.seqLen(); s++) {
                    double max = Double.NEGATIVE_INFINITY;
                    for (int p = 0; p < n; p++) {
                        weight[p] = partials.get(p).lse().get(b, h, s, 0);
                        max = Math.max(max, weight[p]);
                    }
                    java.util.Arrays.fill(acc, 0);
                    double sum = 0;
                    if (max != Double.NEGATIVE_INFINITY) {
                        for (int p = 0; p < n; p++) {
                            if (weight[p] == Double.NEGATIVE_INFINITY) {
                                continue; // an empty partial: its output is never read
                            }
                            double w = Math.exp(weight[p] - max);
                            sum += w;
                            if (w < Float.MIN_NORMAL) {
                                continue; // its keys weigh 0 in F32: its output (NaN included) adds nothing
                            }
                            partials.get(p).out().readRow(b, h, s, row, 0);
                            for (int x = 0; x < dv; x++) {
                                acc[x] += w * row[x];
                            }
                        }
                    }
                    for (int x = 0; x < dv; x++) {
                        mergedRow[x] = sum == 0 ? 0f : (float) (acc[x] / sum);
                    }
                    out.writeRow(b, h, s, mergedRow, 0);
                    lse.set(b, h, s, 0, sum == 0 ? Float.NEGATIVE_INFINITY : (float) (max + Math.log(sum)));
                }
            }
        }
    }

    /** Rejects an LSE of {@code +inf} or NaN, which no forward writes; {@code -inf} is an empty row. */
    private static void requireFiniteOrEmpty(String name, Tensor lse) {
        for (int b = 0; b < lse.batch(); b++) {
            for (int h = 0; h < lse.heads(); h++) {
                for (int s = 0; s < lse.seqLen(); s++) {
                    float x = lse.get(b, h, s, 0);
                    if (Float.isNaN(x) || x == Float.POSITIVE_INFINITY) {
                        throw new IllegalArgumentException(name + ": " + x + " at [" + b + ", " + h + ", " + s
                                + ", 0]; a log-sum-exp is finite, or -inf for a row that sees no key");
                    }
                }
            }
        }
    }

    private static void requireShape(String name, Tensor t, long[] expected) {
        if (!java.util.Arrays.equals(t.shape(), expected)) {
            throw new IllegalArgumentException(
                    name + ": shape " + t.shapeString() + " must be " + java.util.Arrays.toString(expected)
                            + ", the shape of partials[0] (out [B, H, S, Dv], lse [B, H, S, 1])");
        }
    }
}
