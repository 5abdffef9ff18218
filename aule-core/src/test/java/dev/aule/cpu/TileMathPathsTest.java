package dev.aule.cpu;

import dev.aule.Backends;
import dev.aule.testing.CaseFailures;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import java.util.function.UnaryOperator;

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

    /**
     * Every 16-bit pattern widens bit for bit as the JDK converts it (subnormals, infinities; NaN to NaN),
     * from an odd element offset and over a count that leaves a tail for the scalar loop.
     */
    @Test
    void widenConvertsEveryHalfPrecisionPatternExactly() {
        int count = 65536 + 3;
        MemorySegment src = MemorySegment.ofArray(new short[count + 1]);
        for (int i = 0; i < count; i++) {
            src.setAtIndex(ValueLayout.JAVA_SHORT, i + 1, (short) i);
        }
        for (TileMath math : new TileMath[] {new ScalarTileMath(), new VectorTileMath()}) {
            for (boolean bf16 : new boolean[] {false, true}) {
                float[] dst = new float[count + 2];
                math.widen(src, Short.BYTES, bf16, dst, 2, count);
                for (int i = 0; i < count; i++) {
                    short bits = (short) i;
                    float expected = bf16 ? Float.intBitsToFloat(bits << 16) : Float.float16ToFloat(bits);
                    int want = Float.floatToRawIntBits(expected);
                    int got = Float.floatToRawIntBits(dst[2 + i]);
                    // NaN payloads may differ (the JDK's own conversion quiets them or not, compiled or
                    // interpreted); a NaN must stay a NaN.
                    boolean same = Float.isNaN(expected) ? Float.isNaN(dst[2 + i]) : want == got;
                    if (!same) {
                        throw new AssertionError(String.format(
                                "%s %s: pattern 0x%04x gave 0x%08x, want 0x%08x",
                                math.description(), bf16 ? "BF16" : "F16", i & 0xFFFF, got, want));
                    }
                }
                assertEquals(0f, dst[0]);
                assertEquals(0f, dst[1]);
            }
        }
    }

    /**
     * Runs without infinity or NaN patterns take a shorter widening, runs with one the exact one: every finite
     * pattern in one run, and short runs of random patterns holding one infinity or NaN at each position (the
     * vector part and the scalar tail), all bit for bit as the JDK converts them.
     */
    @Test
    void widenIsExactWithAndWithoutInfinitiesInTheRun() {
        short[] finite = new short[65536 - 2048];
        for (int i = 0, n = 0; i < 65536; i++) {
            if ((i & 0x7C00) != 0x7C00) {
                finite[n++] = (short) i;
            }
        }
        checkWiden(finite);
        SplittableRandom rnd = new SplittableRandom(5);
        for (int length = 1; length <= 70; length++) {
            for (int at = 0; at < length; at += 1 + length / 8) {
                short[] run = new short[length];
                for (int i = 0; i < length; i++) {
                    run[i] = (short) (rnd.nextInt(65536) & ~0x4000); // exponents below 16: finite
                }
                run[at] = (short)
                        (0x7C00 | (rnd.nextBoolean() ? 0x8000 : 0) | (rnd.nextBoolean() ? rnd.nextInt(1024) : 0));
                checkWiden(run);
            }
        }
    }

    private static void checkWiden(short[] patterns) {
        MemorySegment src = MemorySegment.ofArray(patterns);
        for (TileMath math : new TileMath[] {new ScalarTileMath(), new VectorTileMath()}) {
            float[] dst = new float[patterns.length];
            math.widen(src, 0, false, dst, 0, patterns.length);
            for (int i = 0; i < patterns.length; i++) {
                float expected = Float.float16ToFloat(patterns[i]);
                boolean same = Float.isNaN(expected)
                        ? Float.isNaN(dst[i])
                        : Float.floatToRawIntBits(expected) == Float.floatToRawIntBits(dst[i]);
                if (!same) {
                    throw new AssertionError(String.format(
                            "%s: pattern 0x%04x at %d of %d gave %s, want %s",
                            math.description(), patterns[i] & 0xFFFF, i, patterns.length, dst[i], expected));
                }
            }
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
        failures.checkRandom(backend, 50_000, 60, false, UnaryOperator.identity());
        failures.checkRandom(backend, 60_000, 30, true, UnaryOperator.identity());
        failures.assertNone(what + " tile-math cases");
    }
}
