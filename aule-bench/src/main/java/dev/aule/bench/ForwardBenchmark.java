package dev.aule.bench;

import dev.aule.AttentionOptions;
import dev.aule.Tensor;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Setup;

/**
 * Prefill forward on the {@link ForwardShapes}: the shapes of the CPU speed targets; {@code dropout} above 0 times
 * the same call with dropout (seed 1).
 */
public class ForwardBenchmark extends ForwardShapes {
    @Param({"cpu"})
    public String backend;

    @Param({"0"})
    public float dropout;

    @Setup
    public void setUp() {
        AttentionOptions options =
                AttentionOptions.builder().causal(causal).dropout(dropout, 1).build();
        prepare(backend, options, HEADS, HEADS, seq, seq, headDim);
    }

    @Benchmark
    public Tensor forward() {
        impl.forward(q, k, v, out, null, options);
        return out;
    }
}
