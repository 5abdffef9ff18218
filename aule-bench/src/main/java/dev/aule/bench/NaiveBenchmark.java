package dev.aule.bench;

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

/** The naive-attention peer on the forward benchmark's shapes; checked equal to the cpu backend before timing. */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "-Xmx4g"})
public class NaiveBenchmark {
    @Param({"2048", "4096"})
    public int seq;

    @Param({"64", "128"})
    public int headDim;

    @Param({"false", "true"})
    public boolean causal;

    private float[] q;
    private float[] k;
    private float[] v;
    private float[] out;

    @Setup
    public void setUp() {
        int heads = ForwardBenchmark.HEADS;
        Tensor tq = Inputs.random(1, 1, heads, seq, headDim);
        Tensor tk = Inputs.random(2, 1, heads, seq, headDim);
        Tensor tv = Inputs.random(3, 1, heads, seq, headDim);
        q = tq.toFloatArray();
        k = tk.toFloatArray();
        v = tv.toFloatArray();
        out = new float[q.length];
        naive();
        PeerCheck.requireEqual("naive", out, PeerCheck.cpuOutput(tq, tk, tv, causal));
    }

    @Benchmark
    public float[] naive() {
        NaiveAttention.forward(q, k, v, out, ForwardBenchmark.HEADS, seq, headDim, causal);
        return out;
    }
}
