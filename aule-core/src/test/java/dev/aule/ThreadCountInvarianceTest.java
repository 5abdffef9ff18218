package dev.aule;

import dev.aule.testing.ForkedJvm;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The cpu backend's forward results are bitwise the same whatever size its pool has: the same seeded workload
 * ({@link ServingWorkloadMain}) in JVMs started with {@code -Daule.cpu.threads} of 1, 2, 3 and 8 prints one
 * hash, the hash of this JVM's own run. The pool is sized once per JVM, hence a JVM per size.
 */
class ThreadCountInvarianceTest {

    @Test
    void everyPoolSizeGivesTheSameBits() throws Exception {
        String expected = String.format(Locale.ROOT, "HASH %016x", ServingWorkloadMain.hash());
        Map<Integer, String> hashes = new LinkedHashMap<>();
        for (int threads : new int[] {1, 2, 3, 8}) {
            List<String> flags = new ArrayList<>(jvmFlags());
            flags.add("-Daule.cpu.threads=" + threads);
            ForkedJvm.Result result = ForkedJvm.run(flags, ServingWorkloadMain.class, Duration.ofMinutes(2));
            assertEquals(0, result.exitCode(), result::transcript);
            assertTrue(result.stdout().startsWith("HASH "), result::transcript);
            hashes.put(threads, result.stdout().strip());
        }
        for (Map.Entry<Integer, String> hash : hashes.entrySet()) {
            assertEquals(
                    expected, hash.getValue(), "threads " + hash.getKey() + " of " + hashes + ", this JVM " + expected);
        }
    }

    /** The flags of this JVM that change the kernels: the Vector API module and a forced vector width. */
    private static List<String> jvmFlags() {
        List<String> flags = new ArrayList<>();
        if (ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent()) {
            flags.add("--add-modules");
            flags.add("jdk.incubator.vector");
        }
        String bits = System.getProperty("aule.cpu.vectorBits");
        if (bits != null) {
            flags.add("-Daule.cpu.vectorBits=" + bits);
        }
        return flags;
    }
}
