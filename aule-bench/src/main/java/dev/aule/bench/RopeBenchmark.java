package dev.aule.bench;

import dev.aule.AttentionOptions;
import dev.aule.Tensor;
import dev.aule.serving.Rope;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Setup;

/**
 * What a separate RoPE pass over q and k costs next to the attention forward it feeds (B = 1,
 * H = 8, Sq = Sk = seq, F32, BHSD): {@code attentionFull} and {@code attentionCausal} time one forward;
 * {@code rotateQk} rotates q and k in place ({@link Rope#apply}, NEOX, full rotary), the pass a caller
 * runs before each forward; {@code rotateQkBackward} is the backward's pass over dq and dk. Rotating
 * in place again and again keeps the values bounded (a rotation keeps each pair's norm), so the pass
 * times the same work every call.
 */
public class RopeBenchmark extends AttentionInputs {
    static final int HEADS = 8;

    @Param({"2048"})
    public int seq;

    @Param({"64", "128"})
    public int headDim;

    @Param({"cpu"})
    public String backend;

    private Rope rope;
    private AttentionOptions causal;

    @Setup
    public void setUp() {
        prepare(backend, AttentionOptions.defaults(), HEADS, HEADS, seq, seq, headDim);
        rope = Rope.of(headDim, seq, 10000, Rope.Style.NEOX);
        causal = AttentionOptions.builder().causal(true).build();
    }

    @Benchmark
    public Tensor attentionFull() {
        impl.forward(q, k, v, out, null, options);
        return out;
    }

    @Benchmark
    public Tensor attentionCausal() {
        impl.forward(q, k, v, out, null, causal);
        return out;
    }

    @Benchmark
    public Tensor rotateQk() {
        rope.apply(q, 0);
        rope.apply(k, 0);
        return k;
    }

    @Benchmark
    public Tensor rotateQkBackward() {
        rope.applyBackward(q, 0);
        rope.applyBackward(k, 0);
        return k;
    }
}
