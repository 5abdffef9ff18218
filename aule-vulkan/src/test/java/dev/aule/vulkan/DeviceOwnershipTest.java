package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A device tensor can only be bound on the device it lives on: one of another device (here a second
 * {@link VulkanDevice} opened on the same driver) is an IllegalArgumentException naming the argument, raised
 * before anything is written. Backends on one device share their tensors.
 */
class DeviceOwnershipTest {
    private final VulkanBackend vulkan = VulkanTestSupport.backend();

    @Test
    void aTensorOfAnotherDeviceIsRejectedByNameAndNothingIsWritten() {
        SplittableRandom rnd = new SplittableRandom(4);
        Tensor host = Tensors.random(rnd, DType.F32, 1, 2, 8, 16);
        try (VulkanDevice otherDevice = VulkanDevice.open()) {
            VulkanBackend other = new VulkanBackend(otherDevice);
            try (VulkanTensor foreign = other.upload(host);
                    VulkanTensor q = vulkan.upload(host);
                    VulkanTensor out = vulkan.upload(host);
                    VulkanTensor otherOut = other.upload(host)) {
                assertForeign("k", () -> vulkan.forward(q, foreign, q, out, null, AttentionOptions.defaults()));
                assertForeign(
                        "out", () -> other.forward(foreign, foreign, foreign, out, null, AttentionOptions.defaults()));
                assertForeign(
                        "dv", () -> vulkan.backward(q, q, q, q, q, q, q, q, otherOut, AttentionOptions.defaults()));
                assertEquals(0.0, dev.aule.spi.Accuracy.relativeError(out.toHost(), host), "out was written");
                assertEquals(0.0, dev.aule.spi.Accuracy.relativeError(otherOut.toHost(), host), "otherOut was written");
            }
        }
    }

    @Test
    void backendsOnOneDeviceShareTheirTensors() {
        SplittableRandom rnd = new SplittableRandom(5);
        Tensor host = Tensors.random(rnd, DType.F32, 1, 2, 8, 16);
        VulkanBackend second = new VulkanBackend();
        try (VulkanTensor q = vulkan.upload(host);
                VulkanTensor out = second.allocate(DType.F32, 1, 2, 8, 16)) {
            second.forward(q, q, q, out, null, AttentionOptions.defaults());
            Tensor expected = Tensor.allocate(DType.F32, 1, 2, 8, 16);
            vulkan.forward(host, host, host, expected, null, AttentionOptions.defaults());
            assertEquals(0.0, dev.aule.spi.Accuracy.relativeError(out.toHost(), expected));
        }
    }

    private static void assertForeign(String name, Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(
                e.getMessage().startsWith(name + ": VulkanTensor[F32 [1, 2, 8, 16]] lives on another Vulkan device"),
                e.getMessage());
    }
}
