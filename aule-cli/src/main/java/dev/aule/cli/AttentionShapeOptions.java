package dev.aule.cli;

import dev.aule.DType;
import dev.aule.Tensor;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code --batch}, {@code --heads}, {@code --kv-heads}, {@code --seq} and {@code --head-dim}: one self-attention shape,
 * queries and keys of the same length, and the tensors it takes. The defaults, a Llama-like shape, are the fields'
 * initial values.
 */
final class AttentionShapeOptions {
    @Option(names = "--batch", description = "batch size B (default ${DEFAULT-VALUE})")
    private int batch = 1;

    @Mixin
    private final Heads heads = new Heads();

    @Option(names = "--seq", description = "sequence length S of queries and keys (default ${DEFAULT-VALUE})")
    private int seq = 1024;

    @Mixin
    private final HeadDim headDim = new HeadDim();

    /** {@return a {@code [B, Hq, S, D]} tensor of {@code dtype}, for the queries or the output} */
    Tensor allocateQueries(DType dtype) {
        return Tensor.allocate(dtype, batch, heads.query(), seq, headDim.value());
    }

    /** {@return a {@code [B, Hkv, S, D]} tensor of {@code dtype}, for the keys or the values} */
    Tensor allocateKeys(DType dtype) {
        return Tensor.allocate(dtype, batch, heads.kv(), seq, headDim.value());
    }
}
