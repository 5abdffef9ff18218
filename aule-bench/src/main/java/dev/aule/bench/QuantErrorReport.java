package dev.aule.bench;

import dev.aule.AttentionOptions;
import dev.aule.Tensor;
import dev.aule.serving.KvCache;
import dev.aule.serving.KvFormat;
import dev.aule.serving.Rope;

import java.util.Locale;
import java.util.SplittableRandom;

/**
 * The error quantized caches add to attention: the output of each format's cache against an F32 cache holding the
 * same keys and values (RoPE applied on the way in, as a model's layer does), max abs error and relative L2 error
 * ({@code ||o - o_f32|| / ||o_f32||}) over all query heads. Random activations, GQA 32:8, D = 128, one sequence of
 * {@code context} tokens, causal; the queries are the last {@code queries} positions. Two distributions: standard
 * normal keys and values, and the same with 4 of the 128 key channels 20 times larger (the outlier channels LLM
 * keys show, which an INT8 block scale must cover).
 *
 * <p>{@code java --add-modules jdk.incubator.vector -cp ... dev.aule.bench.QuantErrorReport [context] [queries]}, defaults
 * 4096 and 1.
 */
public final class QuantErrorReport {
    private QuantErrorReport() {}

    public static void main(String[] args) {
        int context = args.length > 0 ? Integer.parseInt(args[0]) : 4096;
        int queries = args.length > 1 ? Integer.parseInt(args[1]) : 1;
        int qHeads = DecodeBenchmark.Q_HEADS;
        int kvHeads = DecodeBenchmark.KV_HEADS;
        int d = DecodeBenchmark.HEAD_DIM;
        System.out.printf(
                Locale.ROOT,
                "attention output against an F32 cache: GQA %d:%d, D = %d, context %d, %d queries, causal, RoPE%n%n",
                qHeads,
                kvHeads,
                d,
                context,
                queries);
        System.out.printf(Locale.ROOT, "%-22s %-9s %12s %12s%n", "activations", "format", "max abs", "rel L2");
        Rope rope = Rope.of(d, context, 10000, Rope.Style.NEOX);
        AttentionOptions options = AttentionOptions.builder().causal(true).build();
        for (boolean outliers : new boolean[] {false, true}) {
            SplittableRandom rnd = new SplittableRandom(11);
            Tensor k = normal(rnd, kvHeads, context, d, outliers);
            Tensor v = normal(rnd, kvHeads, context, d, false);
            Tensor q = normal(rnd, qHeads, queries, d, false);
            float[] reference = null;
            for (KvFormat format : new KvFormat[] {
                KvFormat.F32, KvFormat.F16, KvFormat.BF16, KvFormat.INT8, KvFormat.FP8_E4M3, KvFormat.FP8_E5M2
            }) {
                KvCache cache = KvCache.allocate(format, 1, kvHeads, context, d, d);
                cache.append(k, v, null, rope);
                float[] out = cache.attention(q, options).out().toFloatArray();
                if (reference == null) {
                    reference = out;
                    continue;
                }
                double maxAbs = 0;
                double diff = 0;
                double norm = 0;
                for (int i = 0; i < out.length; i++) {
                    double e = out[i] - reference[i];
                    maxAbs = Math.max(maxAbs, Math.abs(e));
                    diff += e * e;
                    norm += (double) reference[i] * reference[i];
                }
                System.out.printf(
                        Locale.ROOT,
                        "%-22s %-9s %12.3e %12.3e%n",
                        outliers ? "normal, key outliers" : "normal",
                        format.cliName(),
                        maxAbs,
                        Math.sqrt(diff / norm));
            }
        }
    }

    /** Standard normal {@code [1, heads, len, d]}; with outliers, channels 5, 37, 70 and 101 are 20 times larger. */
    private static Tensor normal(SplittableRandom rnd, int heads, int len, int d, boolean outliers) {
        float[] data = new float[heads * len * d];
        for (int i = 0; i < data.length; i++) {
            int x = i % d;
            double scale = outliers && (x == 5 || x == 37 || x == 70 || x == 101) ? 20 : 1;
            data[i] = (float) (gaussian(rnd) * scale);
        }
        return Tensor.of(data, 1, heads, len, d);
    }

    private static double gaussian(SplittableRandom rnd) {
        double u = rnd.nextDouble();
        double w = rnd.nextDouble();
        return Math.sqrt(-2 * Math.log(1 - u)) * Math.cos(2 * Math.PI * w);
    }
}
