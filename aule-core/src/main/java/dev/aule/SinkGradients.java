package dev.aule;

import java.util.Objects;

/**
 * The gradient of sink logits ({@link AttentionOptions.Builder#sinks(float[])}). Row {@code i} of head {@code h}
 * gives the sink the probability {@code p_sink = exp(sink_h - lse_i)} (its LSE includes the sink term), and
 * {@code d out_i / d sink_h = -p_sink out_i}, so {@code dSink_h = -sum_{b, i} p_sink D_{b,h,i}} with
 * {@code D = rowsum(dOut * out)}, the same {@code D} the backward of q, k and v uses. Summed in float64, in
 * index order, so the result does not depend on threads.
 */
final class SinkGradients {
    private SinkGradients() {}

    static float[] of(Tensor out, Tensor dOut, Tensor lse, AttentionOptions options) {
        Objects.requireNonNull(out, "out");
        Objects.requireNonNull(dOut, "dOut");
        Objects.requireNonNull(lse, "lse");
        Objects.requireNonNull(options, "options");
        if (!options.hasSinks()) {
            throw new IllegalArgumentException("options.sinks: no sink logits are set, so they have no gradient");
        }
        float[] sinks = options.sinks();
        long[] shape = out.shape();
        if (!java.util.Arrays.equals(dOut.shape(), shape)) {
            throw new IllegalArgumentException(
                    "dOut: shape " + dOut.shapeString() + " must equal out's " + out.shapeString());
        }
        if (lse.dtype() != DType.F32
                || lse.batch() != out.batch()
                || lse.heads() != out.heads()
                || lse.seqLen() != out.seqLen()
                || lse.headDim() != 1) {
            throw new IllegalArgumentException("lse: must be F32 [" + out.batch() + ", " + out.heads() + ", "
                    + out.seqLen() + ", 1] for out " + out.shapeString() + ", got " + lse.dtype() + " "
                    + lse.shapeString());
        }
        if (sinks.length != out.heads()) {
            throw new IllegalArgumentException("options.sinks: length " + sinks.length
                    + " must equal the number of query heads " + out.heads() + " of out " + out.shapeString());
        }
        int dv = out.headDim();
        float[] o = new float[dv];
        float[] g = new float[dv];
        double[] grad = new double[sinks.length];
        for (int b = 0; b < out.batch(); b++) {
            for (int h = 0; h < out.heads(); h++) {
                for (int i = 0; i < out.seqLen(); i++) {
                    out.readRow(b, h, i, o, 0);
                    dOut.readRow(b, h, i, g, 0);
                    double delta = 0;
                    for (int x = 0; x < dv; x++) {
                        delta += (double) o[x] * g[x];
                    }
                    double pSink = Math.exp(sinks[h] - (double) lse.get(b, h, i, 0));
                    if (pSink != 0) { // a saturated row (lse +inf) gives its sink nothing, whatever its delta
                        grad[h] -= pSink * delta;
                    }
                }
            }
        }
        float[] result = new float[grad.length];
        for (int h = 0; h < grad.length; h++) {
            result[h] = (float) grad[h];
        }
        return result;
    }
}
