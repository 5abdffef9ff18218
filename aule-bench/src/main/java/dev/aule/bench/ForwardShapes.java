package dev.aule.bench;

import dev.aule.AttentionOptions;
import org.openjdk.jmh.annotations.Param;

/**
 * The prefill shapes of the CPU speed targets, B = 1, H = {@value #HEADS}, Sq = Sk = seq, F32: the
 * forward and the peers timed against it ({@link NaiveBenchmark}, {@link OnnxBenchmark}) share them,
 * so {@link BenchReport} can pair their results.
 */
public abstract class ForwardShapes extends AttentionInputs {
    static final int HEADS = 8;

    @Param({"2048", "4096"})
    public int seq;

    @Param({"64", "128"})
    public int headDim;

    @Param({"false", "true"})
    public boolean causal;

    /** The inputs of this shape for {@code backend}. */
    protected final void prepare(String backend) {
        prepare(backend, AttentionOptions.builder().causal(causal).build(), HEADS, HEADS, seq, seq, headDim);
    }
}
