package dev.aule.bench;

import com.sun.management.HotSpotDiagnosticMXBean;
import dev.aule.AttentionOptions;
import dev.aule.Tensor;
import dev.aule.serving.KvCache;
import dev.aule.serving.KvFormat;

import java.lang.management.ManagementFactory;
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
 * [batches] [passes] [formats] [fp8-scale]}, lists comma-separated; defaults {@code 4096,16384,32768}, {@code 1,16},
 * 9, {@code f32,f16,int8,fp8-e4m3,fp8-e5m2} and {@code 1}. The FP8 caches' scale is a number, or {@code amax}: the
 * inputs' largest magnitude (1) over the format's largest value, the per-tensor scale vLLM computes from the data.
 * FP8 decodes rows of normal codes faster than rows holding subnormal codes, so the scale moves FP8's figures: with
 * a scale of 1, inputs in (-1, 1) leave E4M3 many subnormal codes. A shape whose caches do not fit in the heap is
 * skipped, and its row says so. The header says whether the heap has transparent huge pages
 * ({@code -XX:+UseTransparentHugePages}, which {@code ./aule} sets where Linux offers them): with 4 KiB pages a
 * compute-bound 8-bit step that follows the F32 step of its pass runs slower than alone.
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
        String fp8Scale = args.length > 4 ? args[4] : "1";
        if (!fp8Scale.equals("amax")) {
            double value = Double.parseDouble(fp8Scale);
            if (!(value > 0) || Double.isInfinite(value)) {
                throw new IllegalArgumentException(
                        "fp8-scale (5th argument): must be amax or finite and > 0, got " + fp8Scale);
            }
        }
        if (passes < 1) {
            throw new IllegalArgumentException("passes (3rd argument): must be >= 1, got " + passes);
        }
        System.out.printf(
                Locale.ROOT,
                "decode step: one query per sequence, GQA %d:%d, D = %d, contiguous caches, causal; "
                        + "median of %d interleaved passes; transparent huge pages: %s%n%n",
                DecodeBenchmark.Q_HEADS,
                DecodeBenchmark.KV_HEADS,
                DecodeBenchmark.HEAD_DIM,
                passes,
                hugePages());
        System.out.printf(
                Locale.ROOT,
                "FP8 scale: %s%n%5s %7s %-9s %9s %10s %10s %8s%n",
                fp8Scale,
                "batch",
                "context",
                "format",
                "MiB",
                "ms/step",
                "tokens/s",
                "vs F32");
        for (int batch : batches) {
            for (int context : contexts) {
                measure(batch, context, formats, passes, fp8Scale);
            }
        }
    }

    private static void measure(int batch, int context, List<KvFormat> formats, int passes, String fp8Scale) {
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
            KvCache cache = fp8(f)
                    ? KvCache.allocate(f, scales(f, fp8Scale), scales(f, fp8Scale), batch, kvHeads, context, d, d)
                    : KvCache.allocate(f, batch, kvHeads, context, d, d);
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

    /** {@return "on" or "off": the JVM's UseTransparentHugePages} */
    private static String hugePages() {
        HotSpotDiagnosticMXBean diagnostics = ManagementFactory.getPlatformMXBean(HotSpotDiagnosticMXBean.class);
        try {
            return diagnostics.getVMOption("UseTransparentHugePages").getValue().equals("true") ? "on" : "off";
        } catch (IllegalArgumentException notThisJvm) {
            return "unknown";
        }
    }

    private static boolean fp8(KvFormat f) {
        return f == KvFormat.FP8_E4M3 || f == KvFormat.FP8_E5M2;
    }

    /** One per-tensor scale: the given number, or for {@code amax} the inputs' bound (1) over the format's largest. */
    private static float[] scales(KvFormat f, String fp8Scale) {
        return new float[] {fp8Scale.equals("amax") ? 1f / f.code().max() : Float.parseFloat(fp8Scale)};
    }

    private static int[] ints(String list) {
        return Arrays.stream(list.split(","))
                .mapToInt(s -> Integer.parseInt(s.trim()))
                .toArray();
    }
}
