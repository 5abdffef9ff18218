package dev.aule.vulkan;

import dev.aule.testing.ForkedJvm;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A wait for the device past {@code -Daule.vulkan.timeoutSeconds} ends in a VulkanException naming the
 * property, later calls fail fast with the device marked lost, and the process still exits normally.
 */
class TimeoutTest {
    private static final List<String> FLAGS = List.of(
            "--enable-native-access=ALL-UNNAMED",
            "--sun-misc-unsafe-memory-access=allow",
            "-Daule.vulkan.timeoutSeconds=0.000000001");

    @Test
    void aWaitPastTheTimeoutFailsClearlyAndMarksTheDeviceLost() throws Exception {
        VulkanTestSupport.backend(); // skips (or fails under AULE_REQUIRE_VULKAN=1) without Vulkan
        ForkedJvm.Result result = ForkedJvm.run(FLAGS, TimeoutMain.class, Duration.ofMinutes(2));
        assertTrue(
                result.stdout().contains("TIMEOUT ") && result.stdout().contains("aule.vulkan.timeoutSeconds"),
                result::transcript);
        assertTrue(
                result.stdout().contains("LOST ") && result.stdout().contains("was lost earlier"), result::transcript);
        assertEquals(0, result.exitCode(), result::transcript);
        assertFalse(result.stderr().contains("SIGSEGV"), result::transcript);
    }
}
