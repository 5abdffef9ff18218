package dev.aule.cpu;

import dev.aule.testing.ForkedJvm;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Without {@code --add-modules jdk.incubator.vector} the CPU backend still works, on its scalar
 * path, and says so exactly once through {@link System.Logger} (to stderr with the default
 * java.util.logging configuration), however many calls follow.
 */
class ScalarFallbackTest {
    private static final String WARNING = "The Vector API is not enabled";

    @Test
    void withoutTheVectorModuleTheCpuBackendIsCorrectAndWarnsOnce() throws Exception {
        ForkedJvm.Result result = ForkedJvm.run(List.of("-Xmx256m"), ScalarFallbackMain.class, Duration.ofMinutes(2));
        assertEquals(0, result.exitCode(), result::transcript);
        assertTrue(result.stdout().startsWith("OK"), result::transcript);
        assertTrue(result.stdout().contains("scalar"), "description should say scalar: " + result.transcript());
        assertEquals(1, occurrences(result.stderr(), WARNING), () -> "the warning once: " + result.transcript());
        assertTrue(
                result.stderr().contains("--add-modules jdk.incubator.vector"),
                () -> "the warning says how to enable SIMD: " + result.transcript());
        assertFalse(result.stderr().contains("Using incubator modules"), result::transcript);
    }

    private static int occurrences(String text, String needle) {
        int count = 0;
        for (int at = text.indexOf(needle); at >= 0; at = text.indexOf(needle, at + 1)) {
            count++;
        }
        return count;
    }
}
