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
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.util.concurrent.TimeUnit;

/**
 * The ONNX Runtime peer ({@link OnnxAttention}) on the forward benchmark's shapes and inputs, on
 * as many threads as the cpu backend; checked equal to the cpu backend before timing.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class OnnxBenchmark {
    @Param({"2048", "4096"})
    public int seq;

    @Param({"64", "128"})
    public int headDim;

    @Param({"false", "true"})
    public boolean causal;

    private OnnxAttention ort;

    @Setup
    public void setUp() {
        int heads = ForwardBenchmark.HEADS;
        Tensor q = Inputs.random(1, 1, heads, seq, headDim);
        Tensor k = Inputs.random(2, 1, heads, seq, headDim);
        Tensor v = Inputs.random(3, 1, heads, seq, headDim);
        ort = new OnnxAttention(q.toFloatArray(), k.toFloatArray(), v.toFloatArray(), heads, seq, headDim, causal,
                Contenders.threads());
        ort.forward();
        PeerCheck.requireEqual("onnxruntime", ort.outputBhsd(), PeerCheck.cpuOutput(q, k, v, causal));
    }

    @Benchmark
    public OnnxAttention onnxruntime() {
        ort.forward();
        return ort;
    }

    @TearDown
    public void tearDown() {
        ort.close();
    }
}
