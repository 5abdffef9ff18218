package dev.aule.bench;

import dev.aule.AttentionOptions;
import dev.aule.Tensor;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Setup;

import java.util.concurrent.TimeUnit;

/**
 * Decode-shaped forward: a few new queries against a long cache, GQA 32:8, D = 128, F32, causal, for
 * {@code batch} sequences in one batched call. Memory-bound: compare its bytes per second ({@link #bytes}
 * per sequence) with {@link BandwidthBenchmark}.
 */
@OutputTimeUnit(TimeUnit.MICROSECONDS)
public class DecodeBenchmark extends AttentionInputs {
    static final int Q_HEADS = 32;
    static final int KV_HEADS = 8;
    static final int HEAD_DIM = 128;

    @Param({"1", "8"})
    public int queries;

    @Param({"4096", "32768"})
    public int context;

    /** Sequences of the call (its batch dim), each with its own queries and keys. */
    @Param({"1"})
    public int batch;

    /** Bytes one sequence of a call must read: its K and V cache. */
    static long bytes(int context) {
        return 2L * KV_HEADS * context * HEAD_DIM * Float.BYTES;
    }

    @Setup
    public void setUp() {
        prepare(
                "cpu",
                AttentionOptions.builder().causal(true).build(),
                batch,
                Q_HEADS,
                KV_HEADS,
                queries,
                context,
                HEAD_DIM);
    }

    @Benchmark
    public Tensor decode() {
        impl.forward(q, k, v, out, null, options);
        return out;
    }
}
