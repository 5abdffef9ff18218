package dev.aule.bench;

import dev.aule.AttentionOptions;
import dev.aule.Gradients;
import dev.aule.Tensor;
import dev.aule.spi.BackwardInputs;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Setup;

/**
 * Training backward at B = 1, H = 8, Sq = Sk = seq, F32; FLOPs are 2.5 x the forward's. {@code dropout} above 0 times
 * the same call with dropout (seed 1).
 */
public class BackwardBenchmark extends AttentionInputs {
    @Param({"2048"})
    public int seq;

    @Param({"64", "128"})
    public int headDim;

    @Param({"false", "true"})
    public boolean causal;

    @Param({"cpu"})
    public String backend;

    @Param({"0"})
    public float dropout;

    private Tensor lse;
    private Tensor dOut;
    private Tensor dq;
    private Tensor dk;
    private Tensor dv;

    @Setup
    public void setUp() {
        int heads = ForwardShapes.HEADS;
        prepare(
                backend,
                AttentionOptions.builder().causal(causal).dropout(dropout, 1).build(),
                heads,
                heads,
                seq,
                seq,
                headDim);
        dOut = Inputs.random(4, 1, heads, seq, headDim);
        lse = Inputs.zeros(1, heads, seq, 1);
        dq = Inputs.zeros(1, heads, seq, headDim);
        dk = Inputs.zeros(1, heads, seq, headDim);
        dv = Inputs.zeros(1, heads, seq, headDim);
        impl.forward(q, k, v, out, lse, options);
    }

    @Benchmark
    public Tensor backward() {
        impl.backward(new BackwardInputs(q, k, v, out, dOut, lse), new Gradients(dq, dk, dv), options);
        return dq;
    }
}
