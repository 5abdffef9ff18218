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

/**
 * Decode-shaped forward: a few new queries against a long cache, GQA 32:8, D = 128, F32, causal.
 * Memory-bound: compare its bytes per second ({@link #bytes}) with {@link BandwidthBenchmark}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector"})
public class DecodeBenchmark {
    static final int Q_HEADS = 32;
    static final int KV_HEADS = 8;
    static final int HEAD_DIM = 128;

    @Param({"1", "8"})
    public int queries;

    @Param({"4096", "32768"})
    public int context;

    private AttentionBackend impl;
    private AttentionOptions options;
    private Tensor q;
    private Tensor k;
    private Tensor v;
    private Tensor out;

    /** Bytes one call must read: the K and V cache. */
    static long bytes(int context) {
        return 2L * KV_HEADS * context * HEAD_DIM * Float.BYTES;
    }

    @Setup
    public void setUp() {
        impl = Backends.get("cpu");
        options = AttentionOptions.builder().causal(true).build();
        q = Inputs.random(1, 1, Q_HEADS, queries, HEAD_DIM);
        k = Inputs.random(2, 1, KV_HEADS, context, HEAD_DIM);
        v = Inputs.random(3, 1, KV_HEADS, context, HEAD_DIM);
        out = Inputs.zeros(1, Q_HEADS, queries, HEAD_DIM);
    }

    @Benchmark
    public Tensor decode() {
        impl.forward(q, k, v, out, null, options);
        return out;
    }
}
