package dev.aule.bench;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.Tensor;
import dev.aule.spi.AttentionBackend;

/**
 * The state of the benchmarks that time one attention call: the backend, the options, seeded
 * random q, k, v (seeds 1, 2, 3, as every peer gets them) and an F32 output, all BHSD.
 */
public abstract class AttentionInputs extends BenchmarkSettings {
    protected AttentionBackend impl;
    protected AttentionOptions options;
    protected Tensor q;
    protected Tensor k;
    protected Tensor v;
    protected Tensor out;

    /** Call from the subclass's {@code @Setup}: {@code Dv = D}, batch 1. */
    protected final void prepare(
            String backend,
            AttentionOptions attentionOptions,
            int queryHeads,
            int kvHeads,
            int queryLen,
            int keyLen,
            int headDim) {
        prepare(backend, attentionOptions, 1, queryHeads, kvHeads, queryLen, keyLen, headDim);
    }

    /** Call from the subclass's {@code @Setup}: {@code Dv = D}, {@code batch} sequences. */
    protected final void prepare(
            String backend,
            AttentionOptions attentionOptions,
            int batch,
            int queryHeads,
            int kvHeads,
            int queryLen,
            int keyLen,
            int headDim) {
        impl = Backends.get(backend);
        options = attentionOptions;
        q = Inputs.random(1, batch, queryHeads, queryLen, headDim);
        k = Inputs.random(2, batch, kvHeads, keyLen, headDim);
        v = Inputs.random(3, batch, kvHeads, keyLen, headDim);
        out = Inputs.zeros(batch, queryHeads, queryLen, headDim);
    }
}
