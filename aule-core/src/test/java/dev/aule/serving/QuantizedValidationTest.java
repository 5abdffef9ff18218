package dev.aule.serving;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.QuantizedKv;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Bad arguments to quantized caches and to forwardQuantized: one test per rule, each refused before any write. */
class QuantizedValidationTest {
    private static final AttentionBackend[] BACKENDS = {Backends.get("cpu"), Backends.get("reference")};

    private static void assertMessage(IllegalArgumentException e, String name) {
        assertTrue(e.getMessage().startsWith(name), "message '" + e.getMessage() + "' must name " + name);
    }

    @Test
    void formatNamesParseAndUnknownOnesAreRefused() {
        assertEquals(KvFormat.FP8_E4M3, KvFormat.parse("fp8-e4m3"));
        assertEquals(KvFormat.FP8_E4M3, KvFormat.parse("fp8_e4m3"));
        assertEquals(KvFormat.INT8, KvFormat.parse(" INT8 "));
        for (KvFormat f : KvFormat.values()) {
            assertEquals(f, KvFormat.parse(f.cliName()));
        }
        assertMessage(assertThrows(IllegalArgumentException.class, () -> KvFormat.parse("fp4")), "cache format");
        assertThrows(NullPointerException.class, () -> KvCache.allocate((KvFormat) null, 1, 1, 1, 1, 1));
    }

    @Test
    void scalesAreRefusedForFormatsWithoutThem() {
        for (KvFormat f : new KvFormat[] {KvFormat.INT8, KvFormat.F32, KvFormat.F16, KvFormat.BF16}) {
            assertMessage(
                    assertThrows(
                            IllegalArgumentException.class,
                            () -> KvCache.allocate(f, new float[] {1f}, null, 1, 2, 8, 4, 4)),
                    "keyScales");
            assertMessage(
                    assertThrows(
                            IllegalArgumentException.class,
                            () -> PagedKvCache.create(f, null, new float[] {1f}, 4, 4, 2, 4, 4)),
                    "valueScales");
        }
    }

    @Test
    void fp8ScaleArraysMustHoldOneOrOnePerHead() {
        assertMessage(
                assertThrows(
                        IllegalArgumentException.class,
                        () -> KvCache.allocate(KvFormat.FP8_E4M3, new float[3], null, 1, 2, 8, 4, 4)),
                "keyScales");
        assertMessage(
                assertThrows(
                        IllegalArgumentException.class,
                        () -> PagedKvCache.create(KvFormat.FP8_E5M2, null, new float[] {}, 4, 4, 2, 4, 4)),
                "valueScales");
        // One per tensor and one per head are both taken.
        KvCache.allocate(KvFormat.FP8_E4M3, new float[] {0.5f}, new float[] {1f, 2f}, 1, 2, 8, 4, 4);
    }

    @Test
    void fp8ScalesMustBeFiniteAndPositive() {
        for (float bad : new float[] {0f, -1f, Float.NaN, Float.POSITIVE_INFINITY, -0f}) {
            assertMessage(
                    assertThrows(
                            IllegalArgumentException.class,
                            () -> KvCache.allocate(KvFormat.FP8_E4M3, new float[] {1f, bad}, null, 1, 2, 8, 4, 4)),
                    "keyScales[1]");
            assertMessage(
                    assertThrows(
                            IllegalArgumentException.class,
                            () -> PagedKvCache.create(KvFormat.FP8_E5M2, null, new float[] {bad}, 4, 4, 2, 4, 4)),
                    "valueScales[0]");
        }
    }

    /** The caller's scale array is copied at creation: changing it later changes nothing. */
    @Test
    void creationScalesAreCopied() {
        float[] scales = {0.25f};
        KvCache cache = KvCache.allocate(KvFormat.FP8_E4M3, scales, null, 1, 1, 4, 4, 4);
        scales[0] = 100f;
        Tensor k = Tensor.of(new float[] {1f, 2f, 3f, 4f}, 1, 1, 1, 4);
        cache.append(k, k);
        assertArrayEquals(new float[] {1f, 2f, 3f, 4f}, cache.dequantizedKeys(0).toFloatArray());
    }

    @Test
    void extentsBelowOneAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> KvCache.allocate(KvFormat.INT8, 0, 1, 1, 1, 1));
        assertThrows(IllegalArgumentException.class, () -> PagedKvCache.create(KvFormat.INT8, 1, 0, 1, 1, 1));
    }

    @Test
    void poolsBeyondAnArrayAreRefused() {
        assertMessage(
                assertThrows(
                        IllegalArgumentException.class,
                        () -> PagedKvCache.create(KvFormat.INT8, 1 << 20, 256, 8, 128, 128)),
                "numBlocks");
    }

    /** Non-finite keys or values (after RoPE) cannot be quantized: the append throws and stores nothing. */
    @Test
    void nonFiniteRowsAreRefusedBeforeAnythingIsStored() {
        for (KvFormat f : new KvFormat[] {KvFormat.INT8, KvFormat.FP8_E4M3, KvFormat.FP8_E5M2}) {
            KvCache cache = KvCache.allocate(f, 2, 1, 8, 4, 4);
            Tensor good = Tensor.allocate(DType.F32, 2, 1, 2, 4);
            Tensor bad = Tensor.allocate(DType.F32, 2, 1, 2, 4);
            bad.set(1, 0, 1, 2, Float.NaN);
            assertMessage(assertThrows(IllegalArgumentException.class, () -> cache.append(good, bad)), "v");
            assertArrayEquals(new int[] {0, 0}, cache.lengths());
            PagedKvCache paged = PagedKvCache.create(f, 4, 2, 1, 4, 4);
            int seq = paged.newSequence();
            Tensor inf = Tensor.allocate(DType.F32, 1, 1, 3, 4);
            inf.set(0, 0, 2, 0, Float.POSITIVE_INFINITY);
            assertMessage(
                    assertThrows(
                            IllegalArgumentException.class,
                            () -> paged.append(seq, inf, Tensor.allocate(DType.F32, 1, 1, 3, 4))),
                    "k");
            assertEquals(0, paged.length(seq));
            assertEquals(0, paged.usage().usedBlocks());
        }
    }

    @Test
    void quantizedCachesHaveNoTensors() {
        KvCache cache = KvCache.allocate(KvFormat.INT8, 1, 1, 4, 4, 4);
        assertThrows(IllegalStateException.class, cache::keys);
        assertThrows(IllegalStateException.class, cache::values);
        PagedKvCache paged = PagedKvCache.create(KvFormat.FP8_E4M3, 4, 2, 1, 4, 4);
        assertThrows(IllegalStateException.class, paged::keyBlocks);
        assertThrows(IllegalStateException.class, paged::valueBlocks);
        assertThrows(IllegalStateException.class, paged::dtype);
    }

    // forwardQuantized: each rule of QuantizedShapes, on both backends, with out untouched.

    private static QuantizedKv valid(int[][] tables, int[] lens) {
        int numBlocks = 4;
        int blockSize = 4;
        int kvHeads = 2;
        int d = 8;
        return new QuantizedKv(
                QuantizedKv.Format.INT8,
                numBlocks,
                blockSize,
                kvHeads,
                d,
                d,
                new byte[kvHeads * numBlocks * blockSize * d],
                new byte[kvHeads * numBlocks * blockSize * d],
                new float[kvHeads * numBlocks],
                new float[kvHeads * numBlocks],
                tables,
                lens);
    }

    private static QuantizedKv with(QuantizedKv c, Consumer<Object[]> change) {
        Object[] f = {
            c.format(),
            c.numBlocks(),
            c.blockSize(),
            c.kvHeads(),
            c.headDim(),
            c.valueDim(),
            c.keyCodes(),
            c.valueCodes(),
            c.keyScales(),
            c.valueScales(),
            c.blockTables(),
            c.contextLens()
        };
        change.accept(f);
        return new QuantizedKv(
                (QuantizedKv.Format) f[0],
                (int) f[1],
                (int) f[2],
                (int) f[3],
                (int) f[4],
                (int) f[5],
                (byte[]) f[6],
                (byte[]) f[7],
                (float[]) f[8],
                (float[]) f[9],
                (int[][]) f[10],
                (int[]) f[11]);
    }

    private static void assertRefused(QuantizedKv cache, String name) {
        assertRefused(
                cache,
                Tensors.random(new SplittableRandom(1), DType.F32, 1, 4, 1, 8),
                name,
                AttentionOptions.defaults());
    }

    private static void assertRefused(QuantizedKv cache, Tensor q, String name, AttentionOptions options) {
        for (AttentionBackend backend : BACKENDS) {
            Tensor out = Oracle.poisoned(DType.F32, q.batch(), q.heads(), q.seqLen(), cache.valueDim());
            assertMessage(
                    assertThrows(
                            IllegalArgumentException.class,
                            () -> backend.forwardQuantized(q, cache, out, null, options)),
                    name);
            assertTrue(Oracle.allNaN(out), backend.name() + ": out was written");
        }
    }

    @Test
    void forwardQuantizedRefusesEachBrokenRule() {
        QuantizedKv ok = valid(new int[][] {{0, 1}}, new int[] {5});
        assertRefused(with(ok, f -> f[6] = new byte[3]), "keyCodes");
        assertRefused(with(ok, f -> f[7] = new byte[3]), "valueCodes");
        assertRefused(with(ok, f -> f[8] = new float[7]), "keyScales");
        assertRefused(with(ok, f -> f[9] = new float[9]), "valueScales");
        float[] nan = new float[8];
        nan[3] = Float.NaN;
        assertRefused(with(ok, f -> f[8] = nan), "keyScales[3]");
        float[] negative = new float[8];
        negative[7] = -1f;
        assertRefused(with(ok, f -> f[9] = negative), "valueScales[7]");
        float[] infinite = new float[8];
        infinite[0] = Float.POSITIVE_INFINITY;
        assertRefused(with(ok, f -> f[8] = infinite), "keyScales[0]");
        assertRefused(with(ok, f -> f[2] = 0), "numBlocks, blockSize");
        assertRefused(with(ok, f -> f[10] = new int[][] {{0}, {1}}), "blockTables, contextLens");
        assertRefused(with(ok, f -> f[10] = new int[][] {null}), "blockTables[0]");
        assertRefused(with(ok, f -> f[11] = new int[] {9}), "contextLens[0]");
        assertRefused(with(ok, f -> f[11] = new int[] {-1}), "contextLens[0]");
        assertRefused(with(ok, f -> f[10] = new int[][] {{0, 4}}), "blockTables[0][1]");
        assertRefused(with(ok, f -> f[10] = new int[][] {{-1, 0}}), "blockTables[0][0]");
        // q's heads must be a multiple of the KV heads, its head dim the keys'.
        assertRefused(
                ok,
                Tensors.random(new SplittableRandom(1), DType.F32, 1, 3, 1, 8),
                "q, k",
                AttentionOptions.defaults());
        assertRefused(
                ok, Tensors.random(new SplittableRandom(1), DType.F32, 1, 4, 1, 6), "k", AttentionOptions.defaults());
        assertRefused(
                ok,
                Tensors.random(new SplittableRandom(1), DType.F32, 1, 4, 1, 8),
                "options.dropout",
                AttentionOptions.builder().dropout(0.1f, 1L).build());
    }

    /** A backend without the feature refuses (as aule-vulkan does); the caches select one that has it. */
    @Test
    void backendsWithoutTheFeatureRefuseAndSelectionSkipsThem() {
        dev.aule.testing.TestBackend plain = new dev.aule.testing.TestBackend() {
            @Override
            public String name() {
                return "plain";
            }

            @Override
            public dev.aule.spi.Capabilities capabilities() {
                return dev.aule.spi.Capabilities.of(
                        64, java.util.EnumSet.allOf(DType.class), dev.aule.spi.Capabilities.Feature.SERVING);
            }

            @Override
            public void forward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, AttentionOptions options) {
                throw new AssertionError("not called");
            }
        };
        assertTrue(!plain.capabilities().quantizedKv());
        QuantizedKv cache = valid(new int[][] {{0}}, new int[] {1});
        Tensor q = Tensor.allocate(DType.F32, 1, 4, 1, 8);
        Tensor out = Oracle.poisoned(DType.F32, 1, 4, 1, 8);
        assertThrows(
                UnsupportedOperationException.class,
                () -> plain.forwardQuantized(q, cache, out, null, AttentionOptions.defaults()));
        assertTrue(Oracle.allNaN(out));
        assertTrue(Backends.selected(dev.aule.spi.Capabilities::quantizedKv)
                .capabilities()
                .quantizedKv());
    }
}
