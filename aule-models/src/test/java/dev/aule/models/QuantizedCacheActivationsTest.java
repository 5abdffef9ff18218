package dev.aule.models;

import dev.aule.AttentionOptions;
import dev.aule.Tensor;
import dev.aule.serving.KvCache;
import dev.aule.serving.KvFormat;
import dev.aule.spi.QuantizedKv;
import org.junit.jupiter.api.Test;

import java.util.EnumMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The error quantized KV caches add to attention on a real model's activations: every layer of all-MiniLM-L6-v2
 * on one text of the test sentences (512 tokens), its keys and values stored in a cache of each format and
 * its queries attending them, against an F32 cache of the same rows. Prints the table docs/PERFORMANCE.md quotes
 * and holds each format to a bound about twice what it measured.
 */
class QuantizedCacheActivationsTest {
    /** Worst relative L2 error over the layers each format may show: about twice what was measured. */
    private static final Map<KvFormat, Double> BOUNDS = new EnumMap<>(Map.of(
            KvFormat.F16, 1e-3,
            KvFormat.BF16, 7e-3,
            KvFormat.INT8, 3e-2,
            KvFormat.FP8_E4M3, 0.11,
            KvFormat.FP8_E5M2, 0.21));

    @Test
    void quantizedCachesStayCloseToF32OnEveryLayer() {
        BertEncoder encoder = MiniLm.encoder();
        int[] ids = MiniLm.ids(String.join(" ", MiniLm.sentences()));
        assertTrue(ids.length >= 256, "a long text: " + ids.length + " tokens");
        int layers = 6;
        Map<KvFormat, double[]> worst = new EnumMap<>(KvFormat.class); // max abs, relative L2
        long[] normalRows = new long[4]; // E4M3 scale 1, E4M3 from the data, E5M2 scale 1, E5M2 from the data
        long rowCount = 0;
        for (int layer = 0; layer < layers; layer++) {
            Tensor[] qkv = encoder.attentionInputs(List.of(ids), layer);
            for (int kv = 1; kv <= 2; kv++) {
                float[] rows = qkv[kv].toFloatArray();
                rowCount += normalShare(rows, qkv[kv], QuantizedKv.Format.FP8_E4M3, normalRows, 0);
                normalShare(rows, qkv[kv], QuantizedKv.Format.FP8_E5M2, normalRows, 2);
            }
            float[] reference = attend(KvFormat.F32, qkv);
            for (KvFormat format : BOUNDS.keySet()) {
                float[] out = attend(format, qkv);
                double maxAbs = 0;
                double diff = 0;
                double norm = 0;
                for (int i = 0; i < out.length; i++) {
                    double e = out[i] - reference[i];
                    maxAbs = Math.max(maxAbs, Math.abs(e));
                    diff += e * e;
                    norm += (double) reference[i] * reference[i];
                }
                double[] w = worst.computeIfAbsent(format, f -> new double[2]);
                w[0] = Math.max(w[0], maxAbs);
                w[1] = Math.max(w[1], Math.sqrt(diff / norm));
            }
        }
        System.out.printf(
                Locale.ROOT,
                "all-MiniLM-L6-v2, %d tokens, 12 heads, D = 32: worst over %d layers against an F32 cache%n",
                ids.length,
                layers);
        System.out.printf(
                Locale.ROOT,
                "FP8 rows (one token of one head) whose codes are all normal, keys and values: E4M3 %.1f %% at"
                        + " a scale of 1, %.1f %% at max |x| / 448; E5M2 %.1f %% at 1, %.1f %% at max |x| / 57344%n",
                100.0 * normalRows[0] / rowCount,
                100.0 * normalRows[1] / rowCount,
                100.0 * normalRows[2] / rowCount,
                100.0 * normalRows[3] / rowCount);
        for (Map.Entry<KvFormat, double[]> e : worst.entrySet()) {
            System.out.printf(
                    Locale.ROOT,
                    "%-10s max abs %.3e  rel L2 %.3e%n",
                    e.getKey().cliName(),
                    e.getValue()[0],
                    e.getValue()[1]);
            assertTrue(
                    e.getValue()[1] < BOUNDS.get(e.getKey()),
                    e.getKey() + ": relative L2 " + e.getValue()[1] + " over " + BOUNDS.get(e.getKey()));
        }
    }

    /**
     * Counts the rows (one token of one head) of {@code t} ({@code [1, H, S, D]}, its elements {@code rows}) whose
     * codes in {@code format} are all normal numbers, at a scale of 1 into {@code counts[at]} and at the tensor's
     * largest magnitude over the format's into {@code counts[at + 1]} (the rows whose flag a cache leaves clear, which
     * the decode kernels widen the short way); returns the number of rows.
     */
    private static long normalShare(float[] rows, Tensor t, QuantizedKv.Format format, long[] counts, int at) {
        float amax = 0f;
        for (float x : rows) {
            amax = Math.max(amax, Math.abs(x));
        }
        float[] scales = {1f, amax / format.max()};
        int d = t.headDim();
        long n = (long) t.heads() * t.seqLen();
        for (int r = 0; r < n; r++) {
            for (int c = 0; c < 2; c++) {
                boolean normal = true;
                for (int i = r * d; normal && i < (r + 1) * d; i++) {
                    normal = format.isNormal(format.encode(rows[i] / scales[c]));
                }
                counts[at + c] += normal ? 1 : 0;
            }
        }
        return n;
    }

    /** Every query row against the keys and values held in a {@code format} cache. */
    private static float[] attend(KvFormat format, Tensor[] qkv) {
        Tensor k = qkv[1];
        KvCache cache = KvCache.allocate(format, 1, k.heads(), k.seqLen(), k.headDim(), qkv[2].headDim());
        cache.append(k, qkv[2]);
        return cache.attention(qkv[0], AttentionOptions.defaults()).out().toFloatArray();
    }

    @Test
    void aLayerOutsideTheModelIsRefused() {
        BertEncoder encoder = MiniLm.encoder();
        List<int[]> ids = List.of(MiniLm.ids("a short text"));
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> encoder.attentionInputs(ids, 6));
        assertTrue(e.getMessage().startsWith("layer: 6"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> encoder.attentionInputs(ids, -1));
    }
}
