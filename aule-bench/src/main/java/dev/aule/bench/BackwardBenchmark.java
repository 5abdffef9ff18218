package dev.aule.bench;

import dev.aule.spi.AttentionBackend;
import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.Tensor;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

import java.util.concurrent.TimeUnit;

/** Training backward at B = 1, H = 8, Sq = Sk = seq, F32; FLOPs are 2.5 x the forward's. */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector"})
public class BackwardBenchmark {
    static final int BATCH = 1;
    static final int HEADS = 8;

    @Param({"2048"})
    public int seq;

    @Param({"64", "128"})
    public int headDim;

    @Param({"false", "true"})
    public boolean causal;

    @Param({"cpu"})
    public String backend;

    private AttentionBackend impl;
    private AttentionOptions options;
    private Tensor q;
    private Tensor k;
    private Tensor v;
    private Tensor out;
    private Tensor lse;
    private Tensor dOut;
    private Tensor dq;
    private Tensor dk;
    private Tensor dv;

    @Setup
    public void setUp() {
        impl = Backends.get(backend);
        options = AttentionOptions.builder().causal(causal).build();
        q = Inputs.random(1, BATCH, HEADS, seq, headDim);
        k = Inputs.random(2, BATCH, HEADS, seq, headDim);
        v = Inputs.random(3, BATCH, HEADS, seq, headDim);
        dOut = Inputs.random(4, BATCH, HEADS, seq, headDim);
        out = Inputs.zeros(BATCH, HEADS, seq, headDim);
        lse = Inputs.zeros(BATCH, HEADS, seq, 1);
        dq = Inputs.zeros(BATCH, HEADS, seq, headDim);
        dk = Inputs.zeros(BATCH, HEADS, seq, headDim);
        dv = Inputs.zeros(BATCH, HEADS, seq, headDim);
        impl.forward(q, k, v, out, lse, options);
    }

    @Benchmark
    public Tensor backward() {
        impl.backward(q, k, v, out, dOut, lse, dq, dk, dv, options);
        return dq;
    }
}
