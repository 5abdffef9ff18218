package dev.aule.bench;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.serving.KvCache;
import dev.aule.serving.PagedKvCache;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.PagedKv;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Setup;

import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * One decode step (one new query per sequence) of a batch against its cache, GQA 32:8, D = 128,
 * causal, caches of {@code dtype} (F32 unless given). {@code cache}:
 * <ul>
 *   <li>{@code contiguous}: a {@link KvCache};
 *   <li>{@code paged16}, {@code paged32}: a {@link PagedKvCache} with blocks of 16 or 32 tokens whose
 *       sequences grew in turn (16 tokens at a time, at batch 1 beside a second sequence freed
 *       afterwards), blocks placed by the cache's allocator;
 *   <li>{@code scattered16}, {@code scattered32}: the same pool read through block tables of randomly
 *       permuted blocks, the worst fragmentation a long-running pool can reach (through
 *       {@code forwardPaged} directly).
 * </ul>
 * Memory-bound: compare the bytes of K and V per second ({@link #bytes}) with
 * {@link BandwidthBenchmark} over as many bytes.
 */
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(value = 1, jvmArgsAppend = "-Xmx12g")
public class PagedDecodeBenchmark extends BenchmarkSettings {
    /** Tokens appended per call while filling the caches. */
    static final int CHUNK = 16;

    @Param({"contiguous", "paged16", "paged32", "scattered16", "scattered32"})
    public String cache;

    @Param({"1", "16"})
    public int batch;

    @Param({"4096", "16384", "32768"})
    public int context;

    /** Storage of both caches: F32, or F16/BF16 (half the bytes, widened to F32 as the tiles read them). */
    @Param({"F32"})
    public String dtype;

    private AttentionOptions options;
    private Tensor q;
    private Tensor out;
    private KvCache contiguous;
    private PagedKvCache paged;
    private int[] sequences;
    private int[][] scatteredTables;
    private int[] contextLens;
    private AttentionBackend cpu;

    /** Bytes one step must read from caches of {@code dtype}: every sequence's K and V. */
    static long bytes(int batch, int context, String dtype) {
        return batch
                * DecodeBenchmark.bytes(context)
                / Float.BYTES
                * DType.valueOf(dtype).byteSize();
    }

    @Setup(Level.Trial)
    public void setUp() {
        options = AttentionOptions.builder().causal(true).build();
        q = Inputs.random(1, batch, DecodeBenchmark.Q_HEADS, 1, DecodeBenchmark.HEAD_DIM);
        out = Inputs.zeros(batch, DecodeBenchmark.Q_HEADS, 1, DecodeBenchmark.HEAD_DIM);
        int kvHeads = DecodeBenchmark.KV_HEADS;
        DType storage = DType.valueOf(dtype);
        int d = DecodeBenchmark.HEAD_DIM;
        Tensor k = Inputs.random(2, batch, kvHeads, CHUNK, d);
        Tensor v = Inputs.random(3, batch, kvHeads, CHUNK, d);
        if (cache.equals("contiguous")) {
            contiguous = KvCache.allocate(storage, batch, kvHeads, context, d);
            for (int pos = 0; pos < context; pos += CHUNK) {
                contiguous.append(k, v);
            }
            return;
        }
        int blockSize = Integer.parseInt(cache.replaceAll("[a-z]", ""));
        int decoys = batch == 1 ? 1 : 0;
        int perSequence = PagedKvCache.blocksFor(context, blockSize);
        paged = PagedKvCache.create(storage, (batch + decoys) * perSequence, blockSize, kvHeads, d);
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
        if (cache.startsWith("scattered")) {
            int[] permutation = new int[paged.numBlocks()];
            for (int i = 0; i < permutation.length; i++) {
                int j = rnd.nextInt(i + 1);
                permutation[i] = permutation[j];
                permutation[j] = i;
            }
            scatteredTables = new int[batch][];
            contextLens = new int[batch];
            for (int b = 0; b < batch; b++) {
                scatteredTables[b] = java.util.Arrays.copyOfRange(permutation, b * perSequence, (b + 1) * perSequence);
                contextLens[b] = context;
            }
            cpu = Backends.get("cpu");
        }
    }

    @Benchmark
    public Tensor decode() {
        if (contiguous != null) {
            contiguous.attentionInto(q, out, null, options);
        } else if (scatteredTables != null) {
            cpu.forwardPaged(
                    q,
                    new PagedKv(paged.keyBlocks(), paged.valueBlocks(), scatteredTables, contextLens),
                    out,
                    null,
                    options);
        } else {
            paged.attentionInto(sequences, q, out, null, options);
        }
        return out;
    }
}
