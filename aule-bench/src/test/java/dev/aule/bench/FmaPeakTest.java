package dev.aule.bench;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The FMA peak yardstick: a finite positive rate, its FLOP count, and bad arguments refused. */
class FmaPeakTest {
    @Test
    void measuresAPositiveRateOnEveryThread() {
        double rate = FmaPeak.gflops(2, 100_000);
        assertTrue(rate > 0 && Double.isFinite(rate), "rate " + rate);
    }

    @Test
    void countsTwoFlopsPerLanePerFma() {
        assertEquals(2.0 * 12 * 16 * 1000 * 2, PeakBenchmark.flops(1000, 16, 2));
    }

    @Test
    void refusesNonPositiveThreadsOrTrips() {
        assertThrows(IllegalArgumentException.class, () -> FmaPeak.gflops(0, 10));
        assertThrows(IllegalArgumentException.class, () -> FmaPeak.gflops(1, 0));
    }
}
