package dev.aule.bench;

import dev.aule.AttentionOptions;
import dev.aule.Tensor;
import dev.aule.serving.KvCache;
import dev.aule.serving.KvFormat;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * Decode tokens per second of a contiguous {@code KvCache} in each storage format, F32 and F16 in the same run: per
 * shape, one decode step (one query per sequence, GQA 32:8, D = 128, causal) on a cache of each format, run in
 * turn, pass after pass, in one JVM, after two seconds of warm-up each; a sample repeats its step for at least
 * 50 ms, and each keeps the median of its passes (interleaved, so a shared machine's busy moments slow every
 * format of a pass alike). The ratio column is each format's tokens/s over F32's.
 *
 * <p>{@code java --add-modules jdk.incubator.vector -Xmx12g -cp ... dev.aule.bench.QuantDecodeReport [contexts]
 * [batches] [passes] [formats]}, lists comma-separated; defaults {@code 4096,16384,32768}, {@code 1,16}, 9 and
 * {@code f32,f16,int8,fp8-e4m3,fp8-e5m2}. A shape whose caches do not fit in the heap is skipped, and its row says
 * so.
 */
public final class QuantDecodeReport {
    private static final double WARMUP_SECONDS = 2;
    private static final double SAMPLE_NANOS = 50e6;
    /** Tokens appended per call while filling the caches. */
    private static final int CHUNK = 256;

    private QuantDecodeReport() {}

    public static void main(String[] args) {
        int[] contexts = ints(args.length > 0 ? args[0] : "4096,16384,32768");
        int[] batches = ints(args.length > 1 ? args[1] : "1,16");
        int passes = args.length > 2 ? Integer.parseInt(args[2]) : 9;
        List<KvFormat> formats = new ArrayList<>();
        for (String name : (args.length > 3 ? args[3] : "f32,f16,int8,fp8-e4m3,fp8-e5m2").split(",")) {
            formats.add(KvFormat.parse(name));
        }
        if (!formats.contains(KvFormat.F32)) {
            formats.add(0, KvFormat.F32); // the ratios' baseline
        }
        if (passes < 1) {
            throw new IllegalArgumentException("passes (3rd argument): must be >= 1, got " + passes);
        }
        System.out.printf(
                Locale.ROOT,
                "decode step: one query per sequence, GQA %d:%d, D = %d, contiguous caches, causal; "
                        + "median of %d interleaved passes%n%n",
                DecodeBenchmark.Q_HEADS,
                DecodeBenchmark.KV_HEADS,
                DecodeBenchmark.HEAD_DIM,
                passes);
        System.out.printf(
                Locale.ROOT,
                "%5s %7s %-9s %9s %10s %10s %8s%n",
                "batch",
                "context",
                "format",
                "MiB",
                "ms/step",
                "tokens/s",
                "vs F32");
        for (int batch : batches) {
            for (int context : contexts) {
                measure(batch, context, formats, passes);
            }
        }
    }

    private static void measure(int batch, int context, List<KvFormat> formats, int passes) {
        System.gc();
        int kvHeads = DecodeBenchmark.KV_HEADS;
        int d = DecodeBenchmark.HEAD_DIM;
        long needed = 1L << 30;
        for (KvFormat f : formats) {
            needed += 2L * batch * kvHeads * context * d * f.bytesPerElement();
        }
        if (needed > Runtime.getRuntime().maxMemory()) {
            System.out.printf(Locale.ROOT, "%5d %7d   skipped: needs -Xmx%dm or more%n", batch, context, needed >> 20);
            return;
        }
        AttentionOptions options = AttentionOptions.builder().causal(true).build();
        Tensor q = Inputs.random(1, batch, DecodeBenchmark.Q_HEADS, 1, d);
        Tensor k = Inputs.random(2, batch, kvHeads, CHUNK, d);
        Tensor v = Inputs.random(3, batch, kvHeads, CHUNK, d);
        List<KvCache> caches = new ArrayList<>();
        List<Runnable> steps = new ArrayList<>();
        for (KvFormat f : formats) {
            KvCache cache = KvCache.allocate(f, batch, kvHeads, context, d, d);
            for (int pos = 0; pos < context; pos += CHUNK) {
                int n = Math.min(CHUNK, context - pos);
                int[] counts = new int[batch];
                Arrays.fill(counts, n);
                cache.append(k, v, counts, null);
            }
            caches.add(cache);
            Tensor out = Inputs.zeros(batch, DecodeBenchmark.Q_HEADS, 1, d);
            steps.add(() -> cache.attentionInto(q, out, null, options));
        }
        Stopwatch stopwatch = new Stopwatch(Stopwatch.Warmup.seconds(WARMUP_SECONDS), passes, SAMPLE_NANOS);
        List<Stopwatch.Samples> samples = stopwatch.time(steps);
        double f32Nanos = samples.get(formats.indexOf(KvFormat.F32)).medianNanos();
        for (int i = 0; i < formats.size(); i++) {
            double nanos = samples.get(i).medianNanos();
            System.out.printf(
                    Locale.ROOT,
                    "%5d %7d %-9s %9d %10.2f %10.1f %7.2fx%n",
                    batch,
                    context,
                    formats.get(i).cliName(),
                    caches.get(i).bytes() >> 20,
                    nanos / 1e6,
                    batch * 1e9 / nanos,
                    f32Nanos / nanos);
        }
    }

    private static int[] ints(String list) {
        return Arrays.stream(list.split(","))
                .mapToInt(s -> Integer.parseInt(s.trim()))
                .toArray();
    }
}
