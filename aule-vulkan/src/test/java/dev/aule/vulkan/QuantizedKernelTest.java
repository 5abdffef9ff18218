package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.serving.KvCache;
import dev.aule.serving.KvFormat;
import dev.aule.spi.Accuracy;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.QuantizedKv;
import dev.aule.spi.QuantizedKv.Format;
import dev.aule.testing.ForwardCase;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Quantized caches on the device ({@link VulkanBackend#forwardQuantized}): every code of INT8, FP8 E4M3 and FP8
 * E5M2 decodes to the host's bits on every forward kernel, with codes read through 8-bit views (where the device
 * has them) and unpacked from words; random paged caches (shared and shuffled blocks, lengths 0 and full, GQA,
 * causal and not, every option) against the float64 reference's own quantized entry point; a quantized {@link
 * KvCache} reaching the device under {@code -Daule.backend=vulkan}; bad input refused with the argument named and
 * nothing written.
 */
class QuantizedKernelTest {
    private static final String[] KERNELS = {"decode", "decode-direct", "blocked", "forward"};
    private static final String[] CODES = {"bytes", "words"};

    private final VulkanBackend vulkan = VulkanTestSupport.backend();
    private final AttentionBackend reference = Backends.get("reference");

    @Test
    void everyCodeDecodesToTheHostsBitsOnEveryKernel() throws Throwable {
        // Sequence b sees one key, block b (blockSize 1), whose value row holds codes (b * d + x) mod 256: a row that
        // sees one key gets exactly that key's value, decode(code) * scale, so the output is the decoding itself.
        // Head dim 64 reads four codes a word (VEC4), 62 one code at a time (bytes through 8-bit views).
        float valueScale = 0.75f; // not a power of 2: the product rounds, and must round as on the host
        List<String> failures = new ArrayList<>();
        for (int d : new int[] {64, 62}) {
            int batch = Math.ceilDiv(256, d);
            byte[] values = new byte[batch * d];
            for (int c = 0; c < values.length; c++) {
                values[c] = (byte) c;
            }
            float[] keyScales = new float[batch];
            float[] valueScales = new float[batch];
            Arrays.fill(keyScales, 1f);
            Arrays.fill(valueScales, valueScale);
            int[][] tables = new int[batch][];
            int[] lens = new int[batch];
            for (int b = 0; b < batch; b++) {
                tables[b] = new int[] {b};
                lens[b] = 1;
            }
            Tensor q = Tensors.random(new SplittableRandom(7), DType.F32, batch, 2, 1, d);
            for (Format format : Format.values()) {
                QuantizedKv cache = new QuantizedKv(
                        format, batch, 1, 1, d, d, new byte[batch * d], values, keyScales, valueScales, tables, lens);
                for (String kernel : KERNELS) {
                    for (String codes : CODES) {
                        Tensor out = nanFilled(DType.F32, batch, 2, 1, d);
                        run(
                                kernel,
                                codes,
                                () -> vulkan.forwardQuantized(q, cache, out, null, AttentionOptions.defaults()));
                        float[] got = out.toFloatArray();
                        for (int b = 0; b < batch; b++) {
                            for (int h = 0; h < 2; h++) {
                                for (int x = 0; x < d; x++) {
                                    byte c = values[b * d + x];
                                    float want = format.decode(c) * valueScale;
                                    float have = got[(b * 2 + h) * d + x];
                                    // -0 comes out as 0: the output row starts at +0 and adds the value to it
                                    if (!(want == have || (Float.isNaN(want) && Float.isNaN(have)))) {
                                        failures.add(format + " " + kernel + " " + codes + " D=" + d + " code 0x"
                                                + Integer.toHexString(c & 0xFF) + ": " + have + ", host " + want);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        assertTrue(failures.isEmpty(), failures.size() + " codes wrong:\n" + String.join("\n", failures));
    }

    @Test
    void randomPagedCachesMatchTheReference() throws Throwable {
        List<String> failures = new ArrayList<>();
        for (int n = 0; n < 12; n++) {
            SplittableRandom rnd = new SplittableRandom(900 + n);
            Format format = Format.values()[n % 3];
            String kernel = KERNELS[(n / 3) % KERNELS.length];
            String codes = CODES[n % 2];
            int kvHeads = 1 + rnd.nextInt(2);
            int group = new int[] {1, 2, 4}[rnd.nextInt(3)];
            int d = new int[] {16, 32, 64, 6}[rnd.nextInt(4)];
            int dv = rnd.nextInt(3) == 0 ? 8 : d;
            int blockSize = new int[] {1, 5, 16, 32}[rnd.nextInt(4)];
            int numBlocks = 6 + rnd.nextInt(10);
            int batch = 2 + rnd.nextInt(2);
            boolean decode = kernel.startsWith("decode");
            int sq = decode ? 1 + rnd.nextInt(2) : 1 + rnd.nextInt(12);
            int[][] tables = new int[batch][];
            int[] lens = new int[batch];
            for (int b = 0; b < batch; b++) {
                tables[b] = new int[1 + rnd.nextInt(numBlocks)];
                for (int i = 0; i < tables[b].length; i++) {
                    tables[b][i] = rnd.nextInt(numBlocks); // blocks shared between sequences, in any order
                }
                int reach = tables[b].length * blockSize;
                lens[b] = b == 0 ? 0 : b == 1 ? reach : rnd.nextInt(reach + 1);
            }
            QuantizedKv cache = randomCache(rnd, format, numBlocks, blockSize, kvHeads, d, dv, tables, lens);
            int longest = Arrays.stream(lens).max().orElse(0);
            AttentionOptions options = n < 3
                    ? AttentionOptions.builder().causal(n % 2 == 0).build()
                    : ForwardCase.randomOptions(rnd, kvHeads * group, Math.max(1, longest));
            String where = format + " " + kernel + " " + codes + " Hkv=" + kvHeads + " group=" + group + " Sq=" + sq
                    + " D=" + d + "/" + dv + " blocks of " + blockSize + " lens=" + Arrays.toString(lens) + " "
                    + options;
            Tensor q = Tensors.random(rnd, DType.F32, batch, kvHeads * group, sq, d);
            Tensor out = nanFilled(DType.F32, batch, kvHeads * group, sq, dv);
            Tensor lse = nanFilled(DType.F32, batch, kvHeads * group, sq, 1);
            run(kernel, codes, () -> vulkan.forwardQuantized(q, cache, out, lse, options));
            Tensor ref = Tensor.allocate(DType.F32, batch, kvHeads * group, sq, dv);
            Tensor refLse = Tensor.allocate(DType.F32, batch, kvHeads * group, sq, 1);
            reference.forwardQuantized(q, cache, ref, refLse, options);
            double tolerance = Accuracy.forwardTolerance(DType.F32, q, dequantizedKeys(cache), options);
            double outError = Accuracy.relativeError(out, ref);
            double lseError = Accuracy.relativeError(lse, refLse);
            if (!(outError < tolerance) || !(lseError < Accuracy.LSE_TOLERANCE)) {
                failures.add(where + ": out error " + outError + " (limit " + tolerance + "), lse error " + lseError);
            }
        }
        assertTrue(failures.isEmpty(), String.join("\n", failures));
    }

    @Test
    void aQuantizedCacheReachesTheDeviceWhenVulkanIsForced() throws Throwable {
        SplittableRandom rnd = new SplittableRandom(931);
        int d = 32;
        for (KvFormat format : new KvFormat[] {KvFormat.INT8, KvFormat.FP8_E5M2}) {
            KvCache cache = KvCache.allocate(format, 2, 2, 40, d, d);
            cache.append(Tensors.random(rnd, DType.F32, 2, 2, 37, d), Tensors.random(rnd, DType.F32, 2, 2, 37, d));
            Tensor q = Tensors.random(rnd, DType.F32, 2, 4, 3, d);
            AttentionOptions options = AttentionOptions.builder().causal(true).build();
            Tensor[] onDevice = new Tensor[1];
            VulkanTestSupport.withProperty(
                    Backends.PROPERTY,
                    "vulkan",
                    () -> onDevice[0] = cache.attention(q, options).out());
            Tensor[] onReference = new Tensor[1];
            VulkanTestSupport.withProperty(
                    Backends.PROPERTY,
                    "reference",
                    () -> onReference[0] = cache.attention(q, options).out());
            double error = Accuracy.relativeError(onDevice[0], onReference[0]);
            assertTrue(error < Accuracy.F32_TOLERANCE, format + ": error " + error);
            // The call did reach the device: a bad code-reading mode is refused by vulkan's entry point alone.
            IllegalArgumentException e = assertThrows(
                    IllegalArgumentException.class,
                    () -> VulkanTestSupport.withProperty(
                            Backends.PROPERTY,
                            "vulkan",
                            () -> VulkanTestSupport.withProperty(
                                    QuantizedCalls.CODES_PROPERTY, "nibbles", () -> cache.attention(q, options))));
            assertTrue(e.getMessage().startsWith("-D" + QuantizedCalls.CODES_PROPERTY), e.getMessage());
        }
    }

    @Test
    void badInputIsRefusedBeforeAnythingIsWritten() {
        SplittableRandom rnd = new SplittableRandom(932);
        int d = 16;
        int[][] tables = {{0, 1}, {2}};
        int[] lens = {6, 3};
        QuantizedKv good = randomCache(rnd, Format.INT8, 4, 4, 1, d, d, tables, lens);
        Tensor q = Tensors.random(rnd, DType.F32, 2, 2, 1, d);
        Tensor out = nanFilled(DType.F32, 2, 2, 1, d);
        AttentionOptions plain = AttentionOptions.defaults();

        assertRefused(
                "blockTables[1][0]",
                () -> vulkan.forwardQuantized(
                        q, with(good, new int[][] {{0, 1}, {4}}, lens, good.keyScales()), out, null, plain));
        assertRefused(
                "contextLens[1]",
                () -> vulkan.forwardQuantized(
                        q, with(good, tables, new int[] {6, 5}, good.keyScales()), out, null, plain));
        float[] nanScale = good.keyScales().clone();
        nanScale[3] = Float.NaN;
        assertRefused(
                "keyScales[3]", () -> vulkan.forwardQuantized(q, with(good, tables, lens, nanScale), out, null, plain));
        QuantizedKv shortCodes = new QuantizedKv(
                good.format(),
                4,
                4,
                1,
                d,
                d,
                new byte[10],
                good.valueCodes(),
                good.keyScales(),
                good.valueScales(),
                tables,
                lens);
        assertRefused("keyCodes", () -> vulkan.forwardQuantized(q, shortCodes, out, null, plain));
        Tensor wideQ = Tensors.random(rnd, DType.F32, 2, 2, 1, d + 1);
        assertRefused("", () -> vulkan.forwardQuantized(wideQ, good, out, null, plain));
        assertRefused(
                "options",
                () -> vulkan.forwardQuantized(
                        q,
                        good,
                        out,
                        null,
                        AttentionOptions.builder().dropout(0.1f, 1L).build()));
        assertTrue(allNaN(out), "out was written by a refused call");

        vulkan.forwardQuantized(q, good, out, null, plain); // the device is still usable
        assertTrue(Arrays.stream(toDoubles(out)).noneMatch(Double::isNaN));
    }

    @Test
    void quantizedKvIsAdvertised() {
        assertTrue(vulkan.capabilities().quantizedKv());
    }

    private static void assertRefused(String argument, org.junit.jupiter.api.function.Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().startsWith(argument), e.getMessage());
    }

    private static QuantizedKv with(QuantizedKv c, int[][] tables, int[] lens, float[] keyScales) {
        return new QuantizedKv(
                c.format(),
                c.numBlocks(),
                c.blockSize(),
                c.kvHeads(),
                c.headDim(),
                c.valueDim(),
                c.keyCodes(),
                c.valueCodes(),
                keyScales,
                c.valueScales(),
                tables,
                lens);
    }

    private void run(String kernel, String codes, org.junit.jupiter.api.function.Executable call) throws Throwable {
        VulkanTestSupport.withProperty(
                AttentionKernels.KERNEL_PROPERTY,
                kernel,
                () -> VulkanTestSupport.withProperty(QuantizedCalls.CODES_PROPERTY, codes, call));
    }

    /** Codes of moderate magnitude (no NaN or infinity, which the caches never store) and scales near 1 / max. */
    private static QuantizedKv randomCache(
            SplittableRandom rnd,
            Format format,
            int numBlocks,
            int blockSize,
            int kvHeads,
            int d,
            int dv,
            int[][] tables,
            int[] lens) {
        float unit = format == Format.INT8 ? 1f / 127 : format == Format.FP8_E4M3 ? 1f / 8 : 1f / 64;
        float[] keyScales = new float[kvHeads * numBlocks];
        float[] valueScales = new float[kvHeads * numBlocks];
        for (int i = 0; i < keyScales.length; i++) {
            keyScales[i] = (float) (rnd.nextDouble(0.2, 1) * unit);
            valueScales[i] = (float) (rnd.nextDouble(0.2, 1) * unit);
        }
        if (keyScales.length > 1) {
            keyScales[1] = 0f; // a block of all-zero rows has scale 0
        }
        return new QuantizedKv(
                format,
                numBlocks,
                blockSize,
                kvHeads,
                d,
                dv,
                codes(rnd, format, kvHeads * numBlocks * blockSize * d),
                codes(rnd, format, kvHeads * numBlocks * blockSize * dv),
                keyScales,
                valueScales,
                tables,
                lens);
    }

    private static byte[] codes(SplittableRandom rnd, Format format, int n) {
        byte[] codes = new byte[n];
        for (int i = 0; i < n; i++) {
            int c = rnd.nextInt(256);
            codes[i] = (byte) (format == Format.INT8 ? (c == 0x80 ? 0 : c) : c & 0xBF); // no -128, NaN or infinity
        }
        return codes;
    }

    /** Every key of the pools, dequantized, as one tensor: what the tolerance's logit bound reads. */
    private static Tensor dequantizedKeys(QuantizedKv c) {
        int rows = c.numBlocks() * c.blockSize();
        float[] data = new float[c.kvHeads() * rows * c.headDim()];
        int i = 0;
        for (int h = 0; h < c.kvHeads(); h++) {
            for (int n = 0; n < c.numBlocks(); n++) {
                for (int slot = 0; slot < c.blockSize(); slot++) {
                    for (int x = 0; x < c.headDim(); x++) {
                        byte code = c.keyCodes()[(int) c.keyCode(h, n, slot, x)];
                        data[i++] = c.format().decode(code) * c.keyScales()[h * c.numBlocks() + n];
                    }
                }
            }
        }
        return Tensor.of(data, 1, c.kvHeads(), rows, c.headDim());
    }

    private static Tensor nanFilled(DType dtype, int b, int h, int s, int d) {
        Tensor t = Tensor.allocate(dtype, b, h, s, d);
        t.fill(Float.NaN);
        return t;
    }

    private static boolean allNaN(Tensor t) {
        for (float x : t.toFloatArray()) {
            if (!Float.isNaN(x)) {
                return false;
            }
        }
        return true;
    }

    private static double[] toDoubles(Tensor t) {
        float[] f = t.toFloatArray();
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) {
            d[i] = f[i];
        }
        return d;
    }
}
