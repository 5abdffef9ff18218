package dev.aule.bench;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.KvCache;
import dev.aule.PagedKvCache;
import dev.aule.Tensor;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * One decode step (one new query per sequence) of a batch against its cache, GQA 32:8, D = 128,
 * F32, causal: through a contiguous {@link KvCache} or a {@link PagedKvCache} with blocks of 16 or
 * 32 tokens ({@code paged16}, {@code paged32}), whose sequences were grown in turn, so each
 * sequence's blocks are interleaved with the others' and, at batch 1, with a freed sequence's:
 * scattered as in a serving pool. Memory-bound: compare the bytes of K and V per second
 * ({@link #bytes}) with {@link BandwidthBenchmark} over as many bytes.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "-Xmx12g"})
public class PagedDecodeBenchmark {
    /** Tokens appended per call while filling the caches. */
    static final int CHUNK = 16;

    @Param({"contiguous", "paged16", "paged32"})
    public String cache;

    @Param({"1", "16"})
    public int batch;

    @Param({"4096", "16384", "32768"})
    public int context;

    private AttentionOptions options;
    private Tensor q;
    private Tensor out;
    private KvCache contiguous;
    private PagedKvCache paged;
    private int[] sequences;

    /** Bytes one step must read: every sequence's K and V. */
    static long bytes(int batch, int context) {
        return batch * DecodeBenchmark.bytes(context);
    }

    @Setup(Level.Trial)
    public void setUp() {
        options = AttentionOptions.builder().causal(true).build();
        q = Inputs.random(1, batch, DecodeBenchmark.Q_HEADS, 1, DecodeBenchmark.HEAD_DIM);
        out = Inputs.zeros(batch, DecodeBenchmark.Q_HEADS, 1, DecodeBenchmark.HEAD_DIM);
        int kvHeads = DecodeBenchmark.KV_HEADS;
        int d = DecodeBenchmark.HEAD_DIM;
        Tensor k = Inputs.random(2, batch, kvHeads, CHUNK, d);
        Tensor v = Inputs.random(3, batch, kvHeads, CHUNK, d);
        if (cache.equals("contiguous")) {
            contiguous = KvCache.allocate(DType.F32, batch, kvHeads, context, d);
            for (int pos = 0; pos < context; pos += CHUNK) {
                contiguous.append(k, v);
            }
            return;
        }
        int blockSize = Integer.parseInt(cache.substring("paged".length()));
        int decoys = batch == 1 ? 1 : 0;
        int perSequence = PagedKvCache.blocksFor(context, blockSize);
        paged = PagedKvCache.create(DType.F32, (batch + decoys) * perSequence, blockSize, kvHeads, d);
        int[] grown = new int[batch + decoys];
        for (int i = 0; i < grown.length; i++) {
            grown[i] = paged.newSequence();
        }
        SplittableRandom rnd = new SplittableRandom(4);
        for (int pos = 0; pos < context; pos += CHUNK) {
            for (int i = 0; i < grown.length; i++) {
                int b = rnd.nextInt(batch); // the rows' values do not matter for speed, only their placement
                paged.append(grown[i], k.sequence(b, 0, CHUNK), v.sequence(b, 0, CHUNK));
            }
        }
        for (int i = batch; i < grown.length; i++) {
            paged.free(grown[i]);
        }
        sequences = java.util.Arrays.copyOf(grown, batch);
    }

    @Benchmark
    public Tensor decode() {
        if (contiguous != null) {
            contiguous.attentionInto(q, out, null, options);
        } else {
            paged.attentionInto(sequences, q, out, null, options);
        }
        return out;
    }
}
