package dev.aule.bench;

import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.TearDown;

/**
 * The ONNX Runtime peer ({@link OnnxAttention}) on the forward benchmark's shapes and inputs, on
 * as many threads as the cpu backend; checked equal to the cpu backend before timing.
 */
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class OnnxBenchmark extends ForwardShapes {
    private OnnxAttention ort;

    @Setup
    public void setUp() {
        prepare("cpu");
        ort = new OnnxAttention(
                q.toFloatArray(),
                k.toFloatArray(),
                v.toFloatArray(),
                HEADS,
                seq,
                headDim,
                causal,
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
