package dev.aule.vulkan;

import dev.aule.testing.ForkedJvm;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code System.exit} while device calls are in flight ends the process with the requested code: the shutdown
 * hook waits for the calls, then frees the tensors and the device (no abort, no SIGSEGV, no hang).
 */
class ShutdownTest {
    /** The flags a JVM running the backend needs (scripts/jvm-flags.properties), minus the Vector API. */
    private static final List<String> FLAGS =
            List.of("--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow");

    @Test
    void exitWhileCallsRunEndsWithTheRequestedCode() throws Exception {
        VulkanTestSupport.backend(); // skips (or fails under AULE_REQUIRE_VULKAN=1) without Vulkan
        for (int code : new int[] {0, 7}) {
            ForkedJvm.Result result =
                    ForkedJvm.run(FLAGS, ExitWhileCallsRunMain.class, Duration.ofMinutes(3), String.valueOf(code));
            assertTrue(result.stdout().contains("EXITING"), result::transcript);
            assertEquals(code, result.exitCode(), result::transcript);
            assertFalse(result.stderr().contains("SIGSEGV"), result::transcript);
        }
    }
}
