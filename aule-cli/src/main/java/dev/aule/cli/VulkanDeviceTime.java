package dev.aule.cli;

import dev.aule.Backends;
import dev.aule.bench.PreparedAttention;
import dev.aule.vulkan.VulkanBackend;

import java.util.OptionalLong;

/**
 * Gives a sweep's vulkan contender its device time: the backend's GPU timestamps around each call's submission
 * ({@link VulkanBackend#lastDeviceNanos}), which aule-bench cannot see (it knows backends only through the SPI).
 */
final class VulkanDeviceTime {
    private VulkanDeviceTime() {}

    /** {@code prepared}, reporting its calls' device time when {@code name} is a Vulkan backend; else unchanged. */
    static PreparedAttention attach(String name, PreparedAttention prepared) {
        VulkanBackend vulkan = Backends.all().stream()
                .filter(b -> b.name().equals(name))
                .filter(VulkanBackend.class::isInstance)
                .map(VulkanBackend.class::cast)
                .findFirst()
                .orElse(null);
        if (vulkan == null) {
            return prepared;
        }
        return new PreparedAttention() {
            @Override
            public void run() {
                prepared.run();
            }

            @Override
            public OptionalLong lastDeviceNanos() {
                return vulkan.lastDeviceNanos();
            }

            @Override
            public void close() {
                prepared.close();
            }
        };
    }
}
