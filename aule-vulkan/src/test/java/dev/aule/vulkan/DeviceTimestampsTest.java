package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.util.OptionalLong;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertTrue;

/** Device time of a call from its submission's timestamps, where the queue has them (lavapipe's does). */
class DeviceTimestampsTest {
    @Test
    void aForwardOnDeviceTensorsReportsItsDeviceTimeWithinItsWallTime() {
        VulkanBackend vk = VulkanTestSupport.backend();
        Assumptions.assumeTrue(vk.device().timestampBits() > 0, "this device's compute queue has no timestamps");
        SplittableRandom rnd = new SplittableRandom(4);
        try (VulkanTensor q = vk.upload(Tensors.random(rnd, DType.F32, 1, 4, 64, 64));
                VulkanTensor k = vk.upload(Tensors.random(rnd, DType.F32, 1, 4, 200, 64));
                VulkanTensor v = vk.upload(Tensors.random(rnd, DType.F32, 1, 4, 200, 64));
                VulkanTensor out = vk.allocate(DType.F32, 1, 4, 64, 64)) {
            for (int call = 0; call < 3; call++) {
                long start = System.nanoTime();
                vk.forward(q, k, v, out, null, AttentionOptions.defaults());
                long wall = System.nanoTime() - start;
                OptionalLong device = vk.lastDeviceNanos();
                assertTrue(device.isPresent(), "no device time after a forward");
                assertTrue(
                        device.getAsLong() > 0 && device.getAsLong() <= wall,
                        "device " + device.getAsLong() + " ns, wall " + wall + " ns");
            }
        }
    }

    @Test
    void aThreadThatRanNothingHasNoDeviceTime() throws InterruptedException {
        VulkanBackend vk = VulkanTestSupport.backend();
        OptionalLong[] seen = new OptionalLong[1];
        Thread t = new Thread(() -> seen[0] = vk.lastDeviceNanos());
        t.start();
        t.join();
        assertTrue(seen[0].isEmpty(), "a fresh thread reports " + seen[0]);
    }
}
