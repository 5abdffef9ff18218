package dev.aule.bench;

import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * Decode's bytes per second against the machine's read rate, measured so a shared machine's noise
 * hurts less: per shape, the streaming read over as many bytes as one decode step reads
 * ({@link BandwidthBenchmark}), a step on a contiguous {@code KvCache} and a step on a
 * {@code PagedKvCache} of 16-token blocks ({@link PagedDecodeBenchmark}) run in turn, pass after
 * pass, in one JVM, after two seconds of warm-up each; a sample repeats its op for at least 50 ms,
 * and each keeps the median of its passes.
 * A busy moment slows the three of a pass alike, so the ratios hold where single JMH windows swing.
 * A check of the ratios, not a replacement for JMH.
 *
 * <p>{@code java --add-modules jdk.incubator.vector -Xmx14g -cp ... dev.aule.bench.DecodeRatios
 * [contexts] [batches] [passes] [dtype]}, lists comma-separated; defaults {@code 4096,16384,32768},
 * {@code 1,16}, 15 and F32 (F16 and BF16 caches read half the bytes). Batch 16 at 32768 F32 tokens
 * reads 4 GiB per step, held three times on the heap (the read buffer and the two caches), so it
 * needs {@code -Xmx14g}; a shape that does not fit is skipped, and its row says so.
 */
public final class DecodeRatios {
    private static final String[] CACHES = {"contiguous", "paged16"};
    private static final double WARMUP_SECONDS = 2;
    private static final double SAMPLE_NANOS = 50e6;

    private DecodeRatios() {}

    public static void main(String[] args) {
        int[] contexts = ints(args.length > 0 ? args[0] : "4096,16384,32768");
        int[] batches = ints(args.length > 1 ? args[1] : "1,16");
        int passes = args.length > 2 ? Integer.parseInt(args[2]) : 15;
        String dtype = args.length > 3 ? args[3] : "F32";
        if (!Set.of("F32", "F16", "BF16").contains(dtype)) {
            throw new IllegalArgumentException("dtype (4th argument): must be F32, F16 or BF16, got '" + dtype + "'");
        }
        if (passes < 1) {
            throw new IllegalArgumentException("passes (3rd argument): must be >= 1, got " + passes);
        }
        System.out.printf(
                Locale.ROOT,
                "decode step: one query per sequence, GQA %d:%d, D = %d, %s caches, causal; "
                        + "median of %d interleaved passes%n%n",
                DecodeBenchmark.Q_HEADS,
                DecodeBenchmark.KV_HEADS,
                DecodeBenchmark.HEAD_DIM,
                dtype,
                passes);
        System.out.printf(
                Locale.ROOT,
                "%5s %7s %9s %10s %10s %10s %10s %10s %9s%n",
                "batch",
                "context",
                "MiB/step",
                "read GB/s",
                "contig ms",
                "contig GB/s",
                "% of read",
                "paged GB/s",
                "% of read");
        for (int batch : batches) {
            for (int context : contexts) {
                measure(batch, context, dtype, passes);
            }
        }
    }

    private static void measure(int batch, int context, String dtype, int passes) {
        long bytes = PagedDecodeBenchmark.bytes(batch, context, dtype);
        System.gc(); // lets the previous shape's caches go before this one's are allocated
        // The read buffer and the two caches, as large each, live on the heap at once.
        long needed = 3 * bytes + (1L << 30);
        if (needed > Runtime.getRuntime().maxMemory()) {
            System.out.printf(
                    Locale.ROOT,
                    "%5d %7d %9d   skipped: needs -Xmx%dm or more%n",
                    batch,
                    context,
                    bytes >> 20,
                    needed >> 20);
            return;
        }
        BandwidthBenchmark read = new BandwidthBenchmark();
        read.context = Math.toIntExact(bytes / DecodeBenchmark.bytes(1)); // as many bytes as the step reads
        read.setUp();
        PagedDecodeBenchmark[] steps = new PagedDecodeBenchmark[CACHES.length];
        for (int c = 0; c < CACHES.length; c++) {
            steps[c] = new PagedDecodeBenchmark();
            steps[c].cache = CACHES[c];
            steps[c].batch = batch;
            steps[c].context = context;
            steps[c].dtype = dtype;
            steps[c].setUp();
        }
        // Warm-up: each op for two seconds (the JIT compiles the kernels); its pace sets the repetitions that
        // make one timed sample at least 50 ms long.
        Stopwatch stopwatch = new Stopwatch(Stopwatch.Warmup.seconds(WARMUP_SECONDS), passes, SAMPLE_NANOS);
        List<Stopwatch.Samples> samples = stopwatch.time(List.of(read::read, steps[0]::decode, steps[1]::decode));
        double readRate = bytes / samples.get(0).medianNanos();
        double contiguousNanos = samples.get(1).medianNanos();
        double contiguous = bytes / contiguousNanos;
        double paged = bytes / samples.get(2).medianNanos();
        System.out.printf(
                Locale.ROOT,
                "%5d %7d %9d %10.1f %10.2f %10.1f %9.0f%% %10.1f %8.0f%%%n",
                batch,
                context,
                bytes >> 20,
                readRate,
                contiguousNanos / 1e6,
                contiguous,
                100 * contiguous / readRate,
                paged,
                100 * paged / readRate);
    }

    private static int[] ints(String list) {
        return Arrays.stream(list.split(","))
                .mapToInt(s -> Integer.parseInt(s.trim()))
                .toArray();
    }
}
