package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Gradients;
import dev.aule.Tensor;
import dev.aule.mask.AttentionMask;
import dev.aule.mask.MaskMod;
import dev.aule.mask.ScoreMod;
import dev.aule.serving.KvCache;
import dev.aule.spi.BackwardInputs;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Bad input is an IllegalArgumentException naming the argument, and nothing is written. */
class ValidationTest {
    private final VulkanBackend vulkan = VulkanTestSupport.backend();

    @Test
    void badShapesAreRejectedAndNothingIsWritten() {
        SplittableRandom rnd = new SplittableRandom(1);
        Tensor q = Tensors.random(rnd, DType.F32, 1, 4, 8, 32);
        Tensor k = Tensors.random(rnd, DType.F32, 1, 3, 8, 32); // 4 % 3 != 0
        Tensor v = Tensors.random(rnd, DType.F32, 1, 3, 8, 32);
        Tensor out = Tensor.allocate(DType.F32, 1, 4, 8, 32);
        out.fill(Float.NaN);
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class, () -> vulkan.forward(q, k, v, out, null, AttentionOptions.defaults()));
        assertTrue(e.getMessage().startsWith("q, k: query heads 4 must be a multiple of KV heads 3"), e.getMessage());
        assertTrue(Arrays.stream(box(out.toFloatArray())).allMatch(x -> Float.isNaN(x)), "out was written");
    }

    /**
     * ScoreMods are not in the shaders (masks, biases and MaskMods are: MaskedForwardDeviceTest): refused, alone or
     * beside a mask, not ignored, nothing written.
     */
    @Test
    void scoreModsAreRejected() {
        assertTrue(!vulkan.capabilities().masks() && vulkan.capabilities().forwardMasks());
        SplittableRandom rnd = new SplittableRandom(2);
        Tensor q = Tensors.random(rnd, DType.F32, 1, 2, 8, 32);
        Tensor out = Tensor.allocate(DType.F32, 1, 2, 8, 32);
        out.fill(Float.NaN);
        for (AttentionOptions options : new AttentionOptions[] {
            AttentionOptions.builder()
                    .mask(AttentionMask.of(new boolean[64], 1, 1, 8, 8))
                    .scoreMod(ScoreMod.softcap(5f))
                    .build(),
            AttentionOptions.builder()
                    .maskMod(MaskMod.causal())
                    .scoreMod(ScoreMod.softcap(5f))
                    .build(),
            AttentionOptions.builder().scoreMod(ScoreMod.softcap(5f)).build()
        }) {
            IllegalArgumentException e =
                    assertThrows(IllegalArgumentException.class, () -> vulkan.forward(q, q, q, out, null, options));
            assertTrue(e.getMessage().contains("not supported by this backend"), e.getMessage());
        }
        assertTrue(Arrays.stream(box(out.toFloatArray())).allMatch(x -> Float.isNaN(x)), "out was written");
    }

    /**
     * Cached, paged and packed attention run on the device and the backend advertises SERVING, with DEVICE_MEMORY:
     * calls on host-memory caches go to the cpu backend unless vulkan is forced, and forced, a KvCache call runs on
     * the device.
     */
    @Test
    void servingCallsRunElsewhereUnlessVulkanIsForced() throws Throwable {
        assertTrue(vulkan.capabilities().serving() && vulkan.capabilities().deviceMemory());
        Tensor q = Tensor.allocate(DType.F32, 1, 2, 1, 16);

        KvCache cache = KvCache.allocate(DType.F32, 1, 2, 8, 16);
        cache.append(
                Tensors.random(new SplittableRandom(3), DType.F32, 1, 2, 3, 16),
                Tensors.random(new SplittableRandom(4), DType.F32, 1, 2, 3, 16));
        float[] onCpu = cache.attention(q, AttentionOptions.defaults()).out().toFloatArray();
        VulkanTestSupport.withProperty(Backends.PROPERTY, "vulkan", () -> {
            float[] forced =
                    cache.attention(q, AttentionOptions.defaults()).out().toFloatArray();
            for (int i = 0; i < forced.length; i++) {
                assertEquals(onCpu[i], forced[i], 1e-5, "a forced KvCache call runs on vulkan, element " + i);
            }
        });
        VulkanTestSupport.withProperty(Backends.PROPERTY, null, () -> {
            Assumptions.assumeTrue(System.getenv(Backends.ENVIRONMENT) == null, "AULE_BACKEND is set here");
            assertTrue(Backends.selected(dev.aule.spi.Capabilities::serving)
                    .capabilities()
                    .serving());
            assertEquals(
                    "vulkan",
                    Backends.selected(dev.aule.spi.Capabilities::deviceMemory).name(),
                    "auto-selection passes over cpu for a call only vulkan can take");
            float[] o = cache.attention(q, AttentionOptions.defaults()).out().toFloatArray();
            assertTrue(Arrays.stream(box(o)).allMatch(Float::isFinite), Arrays.toString(o));
        });
    }

    /**
     * Dropout and per-batch ALiBi slopes are not in the shaders: the backend refuses them (nothing written), and
     * auto-selection runs such a call on a backend that has them.
     */
    @Test
    void dropoutIsRejectedAndSelectionPassesVulkanBy() throws Throwable {
        assertTrue(!vulkan.capabilities().dropout());
        AttentionOptions options = AttentionOptions.builder().dropout(0.1f, 3).build();
        Tensor q = Tensors.random(new SplittableRandom(5), DType.F32, 1, 2, 8, 32);
        Tensor out = Tensor.allocate(DType.F32, 1, 2, 8, 32);
        out.fill(Float.NaN);
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> vulkan.forward(q, q, q, out, null, options));
        assertTrue(e.getMessage().startsWith("options.dropout: dropout is not supported"), e.getMessage());
        assertTrue(Arrays.stream(box(out.toFloatArray())).allMatch(x -> Float.isNaN(x)), "out was written");
        Tensor lse = Tensor.allocate(DType.F32, 1, 2, 8, 1);
        Gradients grads = new Gradients(
                Tensor.allocate(DType.F32, 1, 2, 8, 32),
                Tensor.allocate(DType.F32, 1, 2, 8, 32),
                Tensor.allocate(DType.F32, 1, 2, 8, 32));
        assertThrows(
                IllegalArgumentException.class,
                () -> vulkan.backward(new BackwardInputs(q, q, q, out, q, lse), grads, options));
        AttentionOptions perBatch = AttentionOptions.builder()
                .alibiSlopesPerBatch(new float[][] {{0.1f, 0.2f}})
                .build();
        e = assertThrows(IllegalArgumentException.class, () -> vulkan.forward(q, q, q, out, null, perBatch));
        assertTrue(
                e.getMessage().startsWith("options.alibiSlopesPerBatch: slopes per batch entry are not supported"),
                e.getMessage());
        VulkanTestSupport.withProperty(Backends.PROPERTY, null, () -> {
            Assumptions.assumeTrue(System.getenv(Backends.ENVIRONMENT) == null, "AULE_BACKEND is set here");
            assertTrue(Arrays.stream(
                            box(dev.aule.Attention.forward(q, q, q, perBatch).toFloatArray()))
                    .allMatch(Float::isFinite));
            float[] o = dev.aule.Attention.forward(q, q, q, options).toFloatArray();
            assertTrue(Arrays.stream(box(o)).allMatch(Float::isFinite), "selection ran it elsewhere");
        });
    }

    @Test
    void headDimsOver256AreRejected() {
        Tensor q = Tensor.allocate(DType.F32, 1, 1, 2, 257);
        Tensor out = Tensor.allocate(DType.F32, 1, 1, 2, 257);
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class, () -> vulkan.forward(q, q, q, out, null, AttentionOptions.defaults()));
        assertTrue(e.getMessage().contains("over this backend's limit of 256"), e.getMessage());
    }

    @Test
    void wrongGradientShapesAreRejectedInBackward() {
        Tensor q = Tensor.allocate(DType.F32, 1, 2, 4, 16);
        Tensor out = Tensor.allocate(DType.F32, 1, 2, 4, 16);
        Tensor dOut = Tensor.allocate(DType.F32, 1, 2, 4, 16);
        Tensor lse = Tensor.allocate(DType.F32, 1, 2, 4, 1);
        Tensor dq = Tensor.allocate(DType.F32, 1, 2, 4, 16);
        Tensor dk = Tensor.allocate(DType.F32, 1, 2, 5, 16);
        Tensor dv = Tensor.allocate(DType.F32, 1, 2, 4, 16);
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class,
                () -> vulkan.backward(
                        new BackwardInputs(q, q, q, out, dOut, lse),
                        new Gradients(dq, dk, dv),
                        AttentionOptions.defaults()));
        assertTrue(e.getMessage().startsWith("dk: shape [1, 2, 5, 16]"), e.getMessage());
    }

    /** q over maxStorageBufferRange (lavapipe: 128 MiB): rejected with the limit named, out untouched. */
    @Test
    void aCallOverTheStorageBufferRangeIsRejected() {
        long range = vulkan.device().info().maxStorageBufferRange();
        Assumptions.assumeTrue(
                range <= 256L << 20,
                "needs an output of maxStorageBufferRange bytes; skipped at " + (range >> 20) + " MiB");
        int seq = (int) (range / (4L * 256)) + 1;
        try (Arena arena = Arena.ofConfined()) {
            // Inputs are stride-0 views of one row (shape-valid, no memory); the output is real memory.
            Tensor row = Tensor.of(
                    MemorySegment.ofArray(new float[256]), DType.F32, new long[] {1, 1, seq, 256}, new long[] {
                        0, 0, 0, 1
                    });
            MemorySegment outMemory = arena.allocate(4L * seq * 256, 64);
            Tensor out = Tensor.of(outMemory, DType.F32, new long[] {1, 1, seq, 256}, new long[] {0, 0, 256, 1});
            IllegalArgumentException e = assertThrows(
                    IllegalArgumentException.class,
                    () -> vulkan.forward(row, row, row, out, null, AttentionOptions.defaults()));
            assertTrue(
                    e.getMessage().startsWith("q: ") && e.getMessage().contains("maxStorageBufferRange"),
                    e.getMessage());
            assertTrue(
                    outMemory.asSlice(0, 1024).toArray(ValueLayout.JAVA_BYTE)[0] == 0
                            && outMemory.get(ValueLayout.JAVA_FLOAT, outMemory.byteSize() - 4) == 0f,
                    "out was written");
        }
    }

    private static Float[] box(float[] a) {
        Float[] b = new Float[a.length];
        for (int i = 0; i < a.length; i++) {
            b[i] = a[i];
        }
        return b;
    }
}
