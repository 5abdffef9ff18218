package dev.aule.cpu.vector;

import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@value SimdWidth#PROPERTY}: honoured when the CPU has the width, else the preferred width and a warning. */
class SimdWidthTest {

    @Test
    void aWidthTheCpuHasIsUsedAsConfigured() {
        assertEquals(new SimdWidth.Choice(512, null), SimdWidth.choose(null, 512));
        assertEquals(new SimdWidth.Choice(512, null), SimdWidth.choose(" ", 512));
        assertEquals(new SimdWidth.Choice(256, null), SimdWidth.choose("256", 512));
        assertEquals(new SimdWidth.Choice(128, null), SimdWidth.choose(" 128 ", 256));
        assertEquals(new SimdWidth.Choice(128, null), SimdWidth.choose("128", 128));
    }

    @Test
    void aWidthTheCpuLacksOrANonWidthFallsBackToThePreferredWithAWarning() {
        for (String bad : new String[] {"512", "64", "384", "1024", "wide", "-128"}) {
            SimdWidth.Choice choice = SimdWidth.choose(bad, 256);
            assertEquals(256, choice.bits(), bad);
            assertNotNull(choice.warning(), bad);
            assertTrue(choice.warning().contains(SimdWidth.PROPERTY), choice.warning());
        }
    }

    /** The executions that set the property see it in the species every kernel uses. */
    @Test
    void theKernelsRunOnTheChosenWidth() {
        int preferred = FloatVector.SPECIES_PREFERRED.vectorBitSize();
        SimdWidth.Choice choice = SimdWidth.choose(System.getProperty(SimdWidth.PROPERTY), preferred);
        assertEquals(choice.bits(), SimdWidth.bits());
        assertEquals(choice.bits(), SimdWidth.F.vectorBitSize());
        assertEquals(SimdWidth.F.length(), SimdWidth.I.length());
        assertEquals(SimdWidth.F.length(), SimdWidth.H.length());
        assertEquals(SimdWidth.lanes() * 4, SimdWidth.keyTile());
        if (System.getProperty(SimdWidth.PROPERTY) == null) {
            assertNull(choice.warning());
        }
    }
}
