package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Gradients;
import dev.aule.Tensor;
import dev.aule.spi.Accuracy;
import dev.aule.spi.AttentionBackend;
import dev.aule.testing.BackwardCases;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Buffers sub-allocated from the device's memory pools: a warm host-tensor call makes no {@code
 * vkAllocateMemory}, on mapped memory and through staging, and calls on memory that earlier calls left dirty
 * still match the reference (every kernel writes all of its outputs; allocated tensors are zeroed).
 */
class PooledMemoryTest {
    private static VulkanDevice mapped;
    private static VulkanDevice unmapped;
    private final AttentionBackend reference = Backends.get("reference");

    @BeforeAll
    static void open() {
        VulkanTestSupport.backend(); // skips (or fails under AULE_REQUIRE_VULKAN=1) without Vulkan
        mapped = VulkanDevice.open();
        unmapped = VulkanDevice.openUnmapped();
    }

    @AfterAll
    static void close() {
        if (mapped != null) {
            mapped.close();
        }
        if (unmapped != null) {
            unmapped.close();
        }
    }

    @Test
    void aWarmHostForwardAllocatesNoDeviceMemory() {
        for (VulkanDevice device : new VulkanDevice[] {mapped, unmapped}) {
            VulkanBackend vulkan = new VulkanBackend(device);
            SplittableRandom rnd = new SplittableRandom(21);
            Tensor q = Tensors.random(rnd, DType.F32, 1, 8, 1, 64);
            Tensor out = Tensor.allocate(DType.F32, 1, 8, 1, 64);
            vulkan.forward(q, q, q, out, null, AttentionOptions.defaults()); // warm: blocks and staging made
            long before = device.memoryAllocations();
            assertTrue(before > 0, "the first call allocated its pool's block");
            for (int i = 0; i < 5; i++) {
                vulkan.forward(q, q, q, out, null, AttentionOptions.defaults());
            }
            assertEquals(
                    0,
                    device.memoryAllocations() - before,
                    "vkAllocateMemory calls of 5 warm host forwards, mapped " + device.mapsBuffers());
        }
    }

    /** Forward over several kernels and shapes, each call on ranges the previous calls wrote. */
    @Test
    void forwardsOnReusedMemoryMatchTheReference() {
        SplittableRandom rnd = new SplittableRandom(22);
        int[][] shapes = {{8, 8, 1, 300}, {4, 2, 33, 33}, {2, 2, 70, 45}, {8, 8, 1, 1}};
        for (VulkanDevice device : new VulkanDevice[] {mapped, unmapped}) {
            VulkanBackend vulkan = new VulkanBackend(device);
            for (int[] s : shapes) {
                Tensor q = Tensors.random(rnd, DType.F32, 1, s[0], s[2], 64);
                Tensor k = Tensors.random(rnd, DType.F32, 1, s[1], s[3], 64);
                Tensor v = Tensors.random(rnd, DType.F32, 1, s[1], s[3], 64);
                AttentionOptions options =
                        AttentionOptions.builder().causal(s[2] > 1).build();
                Tensor ref = Tensor.allocate(DType.F32, 1, s[0], s[2], 64);
                Tensor refLse = Tensor.allocate(DType.F32, 1, s[0], s[2], 1);
                reference.forward(q, k, v, ref, refLse, options);
                Tensor out = Tensor.allocate(DType.F32, 1, s[0], s[2], 64);
                Tensor lse = Tensor.allocate(DType.F32, 1, s[0], s[2], 1);
                vulkan.forward(q, k, v, out, lse, options);
                String what = java.util.Arrays.toString(s) + " mapped " + device.mapsBuffers();
                assertTrue(Accuracy.relativeError(out, ref) < 1e-5, what + " out");
                assertTrue(Accuracy.relativeError(lse, refLse) < 1e-5, what + " lse");
            }
        }
    }

    @Test
    void backwardsOnReusedMemoryMatchTheReference() {
        SplittableRandom rnd = new SplittableRandom(23);
        for (VulkanDevice device : new VulkanDevice[] {mapped, unmapped}) {
            VulkanBackend vulkan = new VulkanBackend(device);
            for (int sq : new int[] {19, 7}) {
                BackwardCases.Case c = new BackwardCases.Case(
                        DType.F32,
                        1,
                        4,
                        2,
                        sq,
                        23,
                        32,
                        32,
                        AttentionOptions.builder().causal(true).build());
                BackwardCases.Inputs in = BackwardCases.inputs(rnd, c, reference);
                Gradients expected = BackwardCases.backward(reference, in, c.options(), DType.F32);
                Gradients actual = BackwardCases.backward(vulkan, in, c.options(), DType.F32);
                double error = BackwardCases.error(actual, expected);
                assertTrue(error < 1e-4, "Sq " + sq + " mapped " + device.mapsBuffers() + ": gradient error " + error);
            }
        }
    }

    /** Regression: pooled memory is not zero, so allocate must zero-fill a range a freed tensor left dirty. */
    @Test
    void anAllocatedTensorIsZeroOnMemoryAFreedOneLeftDirty() {
        SplittableRandom rnd = new SplittableRandom(24);
        for (VulkanDevice device : new VulkanDevice[] {mapped, unmapped}) {
            VulkanBackend vulkan = new VulkanBackend(device);
            Tensor host = Tensors.random(rnd, DType.F32, 1, 3, 17, 16);
            try (VulkanTensor dirty = vulkan.upload(host)) {
                assertArrayEquals(host.toFloatArray(), dirty.toHost().toFloatArray());
            }
            long before = device.memoryAllocations();
            try (VulkanTensor zeros = vulkan.allocate(DType.F32, 1, 3, 17, 16)) {
                assertEquals(0, device.memoryAllocations() - before, "the freed range is reused");
                assertArrayEquals(
                        new float[3 * 17 * 16], zeros.toHost().toFloatArray(), "mapped " + device.mapsBuffers());
            }
        }
    }
}
