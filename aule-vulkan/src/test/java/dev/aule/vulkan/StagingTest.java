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

import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The path of discrete GPUs, on any device ({@link VulkanDevice#openUnmapped}: kernel buffers device-local,
 * host data through the submission's staging buffer): a call is one submit, uploads and read-backs in it
 * round-trip, {@code allocate} zero-fills on the device, and results match the reference.
 */
class StagingTest {
    private static VulkanDevice device;
    private static VulkanBackend vulkan;
    private final AttentionBackend reference = Backends.get("reference");

    @BeforeAll
    static void open() {
        VulkanTestSupport.backend(); // skips (or fails under AULE_REQUIRE_VULKAN=1) without Vulkan
        device = VulkanDevice.openUnmapped();
        vulkan = new VulkanBackend(device);
    }

    @AfterAll
    static void close() {
        if (device != null) {
            device.close();
        }
    }

    @Test
    void kernelBuffersAreNotMapped() {
        assertEquals(false, device.mapsBuffers());
        try (DeviceBuffer b = device.whileUsable(() -> DeviceBuffer.allocate(device, 64))) {
            assertEquals(null, b.mapped());
        }
    }

    /** Several uploads then read-backs in one submission, over more than one staging buffer's worth. */
    @Test
    void downloadsAfterUploadsInOneCallRoundTrip() {
        int buffers = 5;
        int floats = 20_000; // 80 KB each: the staging buffer grows (and retires) within the call
        float[][] read = new float[buffers][];
        long before = device.submits();
        Submission.run(device, (scope, s) -> {
            for (int i = 0; i < buffers; i++) {
                int n = i;
                DeviceBuffer b = scope.add(DeviceBuffer.allocate(device, (long) floats * Float.BYTES));
                s.write(b, memory -> {
                    for (int j = 0; j < floats; j++) {
                        memory.setAtIndex(ValueLayout.JAVA_FLOAT, j, n * 1e5f + j);
                    }
                });
                s.read(b, memory -> read[n] = memory.toArray(ValueLayout.JAVA_FLOAT));
            }
        });
        assertEquals(1, device.submits() - before, "submits of one call");
        for (int i = 0; i < buffers; i++) {
            for (int j = 0; j < floats; j++) {
                assertEquals(i * 1e5f + j, read[i][j], "buffer " + i + " float " + j);
            }
        }
    }

    /** Zeroing is a device command, ordered after a write and before a read in the same submission. */
    @Test
    void zeroOverwritesEarlierDataOnTheDevice() {
        float[][] read = new float[1][];
        Submission.run(device, (scope, s) -> {
            DeviceBuffer b = scope.add(DeviceBuffer.allocate(device, 1000 * Float.BYTES));
            s.write(b, memory -> memory.fill((byte) 0x3f));
            s.zero(b);
            s.read(b, memory -> read[0] = memory.toArray(ValueLayout.JAVA_FLOAT));
        });
        assertArrayEquals(new float[1000], read[0]);
    }

    @Test
    void allocateReturnsZerosAndUploadsRoundTripEveryDtype() {
        SplittableRandom rnd = new SplittableRandom(11);
        for (DType dtype : DType.values()) {
            Tensor host = Tensors.random(rnd, dtype, 2, 3, 5, 7);
            // Dirty memory first, so a missing fill is likely to show in the next allocation.
            try (VulkanTensor dirty = vulkan.upload(host)) {
                assertArrayEquals(host.toFloatArray(), dirty.toHost().toFloatArray(), dtype.toString());
            }
            try (VulkanTensor zeros = vulkan.allocate(dtype, 2, 3, 5, 7)) {
                assertArrayEquals(new float[2 * 3 * 5 * 7], zeros.toHost().toFloatArray(), dtype + " zeros");
            }
        }
    }

    @Test
    void aHostForwardIsOneSubmitAndMatchesTheReference() {
        SplittableRandom rnd = new SplittableRandom(12);
        AttentionOptions options = AttentionOptions.builder()
                .causal(true)
                .alibiSlopes(new float[] {0.5f, 0.25f, 0.125f, 0.0625f})
                .build();
        Tensor q = Tensors.random(rnd, DType.F16, 1, 4, 13, 64);
        Tensor k = Tensors.random(rnd, DType.BF16, 1, 2, 29, 64);
        Tensor v = Tensors.random(rnd, DType.F32, 1, 2, 29, 48);
        Tensor ref = Tensor.allocate(DType.F32, 1, 4, 13, 48);
        Tensor refLse = Tensor.allocate(DType.F32, 1, 4, 13, 1);
        reference.forward(q, k, v, ref, refLse, options);
        Tensor out = Tensor.allocate(DType.F32, 1, 4, 13, 48);
        Tensor lse = Tensor.allocate(DType.F32, 1, 4, 13, 1);
        long before = device.submits();
        vulkan.forward(q, k, v, out, lse, options);
        assertEquals(1, device.submits() - before, "submits of one host forward");
        assertTrue(Accuracy.relativeError(out, ref) < 1e-5, "out error " + Accuracy.relativeError(out, ref));
        assertTrue(Accuracy.relativeError(lse, refLse) < 1e-5, "lse");
    }

    @Test
    void aHostBackwardIsOneSubmitAndMatchesTheReference() {
        SplittableRandom rnd = new SplittableRandom(13);
        BackwardCases.Case c = new BackwardCases.Case(
                DType.F32,
                1,
                4,
                2,
                30,
                41,
                32,
                48,
                AttentionOptions.builder().causal(true).build());
        BackwardCases.Inputs in = BackwardCases.inputs(rnd, c, reference);
        Gradients expected = BackwardCases.backward(reference, in, c.options(), DType.F32);
        long before = device.submits();
        Gradients actual = BackwardCases.backward(vulkan, in, c.options(), DType.F32);
        assertEquals(1, device.submits() - before, "submits of one host backward");
        double error = BackwardCases.error(actual, expected);
        assertTrue(error < 1e-4, "gradient error " + error);
    }

    @Test
    void deviceTensorCallsMatchTheReference() {
        SplittableRandom rnd = new SplittableRandom(14);
        Tensor q = Tensors.random(rnd, DType.F32, 1, 8, 1, 64);
        Tensor kv = Tensors.random(rnd, DType.F32, 1, 8, 300, 64);
        Tensor ref = Tensor.allocate(DType.F32, 1, 8, 1, 64);
        reference.forward(q, kv, kv, ref, null, AttentionOptions.defaults());
        try (VulkanTensor qd = vulkan.upload(q);
                VulkanTensor kd = vulkan.upload(kv);
                VulkanTensor od = vulkan.allocate(DType.BF16, 1, 8, 1, 64)) {
            for (int step = 0; step < 3; step++) {
                vulkan.forward(qd, kd, kd, od, null, AttentionOptions.defaults());
                double error = Accuracy.relativeError(od.toHost(), ref);
                assertTrue(error < 1e-2, "step " + step + " error " + error);
            }
        }
    }

    /** Host-only work on mapped memory (the usual unified-memory device) submits nothing. */
    @Test
    void mappedUploadsAndDownloadsSubmitNothing() {
        VulkanBackend shared = VulkanTestSupport.backend();
        VulkanDevice mapped = shared.device();
        org.junit.jupiter.api.Assumptions.assumeTrue(mapped.mapsBuffers(), "a device without unified memory");
        Tensor host = Tensors.random(new SplittableRandom(15), DType.F32, 1, 2, 3, 4);
        long before = mapped.submits();
        try (VulkanTensor t = shared.upload(host)) {
            assertArrayEquals(host.toFloatArray(), t.toHost().toFloatArray());
        }
        assertEquals(0, mapped.submits() - before);
    }
}
