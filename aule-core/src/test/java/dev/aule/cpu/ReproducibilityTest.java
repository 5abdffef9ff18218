package dev.aule.cpu;

import dev.aule.testing.ForkedJvm;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The same call on the same inputs gives the same bits, from the first call of a fresh JVM on. Each
 * check forks a JVM so the code starts cold (interpreted) and gets compiled while the calls repeat.
 */
class ReproducibilityTest {
    /**
     * Only a hang fails on time: the scalar child compiles and runs thousands of forwards, about 40 s on an idle
     * 2-core machine and several minutes when the machine is loaded.
     */
    private static final Duration HANG_LIMIT = Duration.ofMinutes(8);

    /** The scalar path is plain Java arithmetic: strict IEEE semantics whether interpreted or compiled. */
    @Test
    void scalarPathGivesTheSameBitsColdAndWarm() throws Exception {
        ForkedJvm.Result result = ForkedJvm.run(List.of(), RepeatedForwardMain.class, HANG_LIMIT, "3000");
        assertEquals(0, result.exitCode(), result::transcript);
        assertTrue(result.stdout().startsWith("STABLE"), result::transcript);
    }

    /**
     * On the vector path the first calls run the Vector API's Java fallback and later ones C2's
     * intrinsics; every reduction therefore has a fixed order (no reduceLanes(ADD), whose order
     * differs between the two), so the bits do not change when the code gets compiled.
     */
    @Test
    void vectorPathGivesTheSameBitsColdAndWarm() throws Exception {
        ForkedJvm.Result result = ForkedJvm.run(
                List.of("--add-modules", "jdk.incubator.vector"), RepeatedForwardMain.class, HANG_LIMIT, "3000");
        assertEquals(0, result.exitCode(), result::transcript);
        assertTrue(result.stdout().startsWith("STABLE"), result::transcript);
    }
}
