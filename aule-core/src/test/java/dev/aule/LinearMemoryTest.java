package dev.aule;

import dev.aule.testing.ForkedJvm;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * FlashAttention's point: memory linear in the sequence length. At Sq = Sk = 32768 the score matrix
 * of one head alone is 32768^2 floats = 4 GiB; the forward must run in a JVM whose whole heap is
 * 512 MiB (q, k, v and out take 32 MiB of it), and be right.
 */
class LinearMemoryTest {

    @Test
    void a32kCausalForwardRunsInA512MiBHeap() throws Exception {
        ForkedJvm.Result result = ForkedJvm.run(
                List.of("--add-modules", "jdk.incubator.vector", "-Xmx512m"),
                LongCausalForward.class,
                Duration.ofMinutes(5),
                "32768");
        System.out.println("[LinearMemoryTest] " + result.stdout().strip());
        assertEquals(0, result.exitCode(), result::transcript);
        assertTrue(result.stdout().startsWith("OK"), result::transcript);
    }
}
