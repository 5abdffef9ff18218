package dev.aule.cpu;

import dev.aule.Backends;
import dev.aule.testing.CaseFailures;
import dev.aule.testing.ForwardCase;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Both tile arithmetics, each in its own backend, against the reference on a sample of the random
 * cases. The test JVM has the Vector API, so Backends.get("cpu") only ever exercises the SIMD path;
 * this is where the scalar path (the fallback of every JVM without the module) is checked in process.
 */
class TileMathPathsTest {

    @Test
    void theTestJvmRunsTheVectorPath() {
        assertTrue(TileMaths.vectorApiPresent(), "surefire should pass --add-modules jdk.incubator.vector");
        assertTrue(((CpuBackend) Backends.get("cpu")).simd());
        assertFalse(new CpuBackend(new ScalarTileMath()).simd());
        assertTrue(new CpuBackend(new VectorTileMath()).simd());
    }

    /** Lanes divide the key tile, so value rows padded to lanes always fit whole vectors. */
    @Test
    void tileGeometryIsConsistent() {
        for (TileMath math : new TileMath[] {new ScalarTileMath(), new VectorTileMath()}) {
            assertTrue(math.lanes() >= 1, math.description());
            assertEquals(0, math.keyTile() % math.lanes(), math.description());
            assertFalse(math.description().isBlank());
        }
    }

    @Test
    void scalarTileMathMatchesTheReference() {
        checkSample(new CpuBackend(new ScalarTileMath()), "scalar");
    }

    @Test
    void vectorTileMathMatchesTheReference() {
        checkSample(new CpuBackend(new VectorTileMath()), "vector");
    }

    /** 60 F32 and 30 half-precision cases, seeds apart from the property test's. */
    private static void checkSample(CpuBackend backend, String what) {
        CaseFailures failures = new CaseFailures();
        for (long seed = 50_000; seed < 50_060; seed++) {
            failures.check(backend, ForwardCase.random(seed, false));
        }
        for (long seed = 60_000; seed < 60_030; seed++) {
            failures.check(backend, ForwardCase.random(seed, true));
        }
        failures.assertNone(what + " tile-math cases");
    }
}
