package dev.aule.cpu;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.Accuracy;
import dev.aule.spi.QuantizedKv;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The cpu kernels on quantized caches, scalar and SIMD at this JVM's width (the 256- and 128-bit executions run
 * it again): codes read in place (head dims a whole number of vectors) and dequantized into scratch (others),
 * decode and prefill tiles, random block tables and scales, against the reference's float64 forward on the
 * dequantized rows. Seeds past 36 take the FP8 kernels past the range of their shorter widening's power of two:
 * seeds 37 to 42 with queries of magnitude 2^8 (E4M3) or 2^16 (E5M2) and more, the keys' scales smaller by as much
 * (so the scores stay where they were), seeds 43 to 48 with value scales large enough that the probabilities
 * cannot take the power of two.
 */
class QuantizedForwardCpuTest {

    /**
     * Random codes; FP8 with {@code mostlyNormal}: normal numbers but about one code in 300, so that most rows take
     * the kernels' shorter widening and a few the full one (else most rows hold a zero or subnormal code).
     */
    private static byte[] codes(SplittableRandom rnd, QuantizedKv.Format format, int n, boolean mostlyNormal) {
        byte[] codes = new byte[n];
        int shift = format == QuantizedKv.Format.FP8_E4M3 ? 3 : 2;
        for (int i = 0; i < n; i++) {
            byte c = (byte) rnd.nextInt(256);
            // Small magnitudes keep scores moderate; NaN and infinity codes are never stored by the caches.
            if (format != QuantizedKv.Format.INT8) {
                c = (byte) (c & 0xBF); // clears the exponent's top bit
                if (mostlyNormal && (c & 0x3F) >>> shift == 0 && rnd.nextInt(300) != 0) {
                    c = (byte) (c | 1 << shift); // exponent field 1
                }
            }
            codes[i] = c;
        }
        return codes;
    }

    @Test
    void scalarAndSimdMatchTheReferenceOnQuantizedCaches() {
        CpuBackend[] backends = {new CpuBackend(new ScalarTileMath()), new CpuBackend(new VectorTileMath())};
        for (long seed = 1; seed <= 48; seed++) {
            SplittableRandom rnd = new SplittableRandom(seed);
            QuantizedKv.Format format = QuantizedKv.Format.values()[(int) (seed % 3)];
            int kvHeads = 1 + rnd.nextInt(2);
            int group = new int[] {1, 4, 8}[rnd.nextInt(3)];
            int d = new int[] {16, 32, 64, 128, 24, 7}[rnd.nextInt(6)];
            int dv = rnd.nextInt(3) == 0 ? 48 : d;
            int blockSize = new int[] {1, 7, 16, 32}[rnd.nextInt(4)];
            int numBlocks = 10 + rnd.nextInt(20);
            int batch = 1 + rnd.nextInt(3);
            int sq = rnd.nextInt(3) == 0 ? 1 + rnd.nextInt(24) : 1;
            int[][] tables = new int[batch][];
            int[] lens = new int[batch];
            for (int b = 0; b < batch; b++) {
                tables[b] = new int[1 + rnd.nextInt(numBlocks)];
                for (int i = 0; i < tables[b].length; i++) {
                    tables[b][i] = rnd.nextInt(numBlocks);
                }
                lens[b] = rnd.nextInt(tables[b].length * blockSize + 1);
            }
            float[] keyScales = new float[kvHeads * numBlocks];
            float[] valueScales = new float[kvHeads * numBlocks];
            for (int i = 0; i < keyScales.length; i++) {
                float unit = format == QuantizedKv.Format.INT8
                        ? 1f / 127
                        : format == QuantizedKv.Format.FP8_E4M3 ? 1f / 8 : 1f / 64;
                keyScales[i] = (float) (rnd.nextDouble(0.2, 1) * unit);
                valueScales[i] = (float) (rnd.nextDouble(0.2, 1) * unit);
            }
            // Past the shorter widening's range (see the class comment; the queries are uniform in (-1, 1) and scaled
            // by the softmax scale, 1 / sqrt(d), before the kernels read them); INT8 takes E4M3's factors.
            float queryFactor = format == QuantizedKv.Format.FP8_E5M2 ? 0x1p21f : 0x1p12f;
            float valueFactor = format == QuantizedKv.Format.FP8_E5M2 ? 0x1p24f : 0x1p13f;
            for (int i = 0; i < keyScales.length; i++) {
                if (seed > 36 && seed <= 42) {
                    keyScales[i] /= queryFactor;
                } else if (seed > 42) {
                    valueScales[i] *= valueFactor;
                }
            }
            QuantizedKv cache = new QuantizedKv(
                    format,
                    numBlocks,
                    blockSize,
                    kvHeads,
                    d,
                    dv,
                    codes(rnd, format, kvHeads * numBlocks * blockSize * d, seed % 2 == 0),
                    codes(rnd, format, kvHeads * numBlocks * blockSize * dv, seed % 2 == 0),
                    keyScales,
                    valueScales,
                    tables,
                    lens);
            Tensor q = Tensors.random(rnd, DType.F32, batch, kvHeads * group, sq, d);
            if (seed > 36 && seed <= 42) {
                float[] scaled = q.toFloatArray();
                for (int i = 0; i < scaled.length; i++) {
                    scaled[i] *= queryFactor;
                }
                q = Tensor.of(scaled, batch, kvHeads * group, sq, d);
            }
            AttentionOptions options =
                    AttentionOptions.builder().causal(rnd.nextBoolean()).build();
            Tensor expected = Tensor.allocate(DType.F32, batch, kvHeads * group, sq, dv);
            Tensor expectedLse = Tensor.allocate(DType.F32, batch, kvHeads * group, sq, 1);
            Backends.get("reference").forwardQuantized(q, cache, expected, expectedLse, options);
            for (CpuBackend backend : backends) {
                Tensor out = Tensor.allocate(DType.F32, batch, kvHeads * group, sq, dv);
                Tensor lse = Tensor.allocate(DType.F32, batch, kvHeads * group, sq, 1);
                backend.forwardQuantized(q, cache, out, lse, options);
                String where = "seed " + seed + " " + format + " d " + d + "/" + dv + " blocks of " + blockSize + " sq "
                        + sq + " " + backend.description();
                double error = Accuracy.relativeError(out, expected);
                assertTrue(error < 1e-5, "out error " + error + ": " + where);
                double lseError = Accuracy.relativeError(lse, expectedLse);
                assertTrue(lseError < 1e-5, "lse error " + lseError + ": " + where);
            }
        }
    }
}
