package dev.aule.bench;

import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.Warmup;

/** The naive-attention peer on the forward benchmark's shapes; checked equal to the cpu backend before timing. */
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 2)
@Fork(value = 1, jvmArgsAppend = "-Xmx4g")
public class NaiveBenchmark extends ForwardShapes {
    private float[] qArray;
    private float[] kArray;
    private float[] vArray;
    private float[] outArray;

    @Setup
    public void setUp() {
        prepare("cpu");
        qArray = q.toFloatArray();
        kArray = k.toFloatArray();
        vArray = v.toFloatArray();
        outArray = new float[qArray.length];
        naive();
        PeerCheck.requireEqual("naive", outArray, PeerCheck.cpuOutput(q, k, v, causal));
    }

    @Benchmark
    public float[] naive() {
        NaiveAttention.forward(qArray, kArray, vArray, outArray, HEADS, seq, headDim, causal);
        return outArray;
    }
}
