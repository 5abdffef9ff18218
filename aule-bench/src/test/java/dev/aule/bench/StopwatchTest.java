package dev.aule.bench;

import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class StopwatchTest {

    @Test
    void warmsUpThenTimesOneCallOfEachOperationPerPass() {
        AtomicInteger first = new AtomicInteger();
        AtomicInteger second = new AtomicInteger();
        List<Stopwatch.Samples> samples = new Stopwatch(Stopwatch.Warmup.calls(3), 5)
                .time(List.of(first::incrementAndGet, second::incrementAndGet));
        assertEquals(8, first.get());
        assertEquals(8, second.get());
        assertEquals(5, samples.get(0).nanosPerCall().length);
    }

    @Test
    void theUntimedStepIsNotCounted() {
        Stopwatch.Samples samples =
                new Stopwatch(Stopwatch.Warmup.calls(0), 3).time(() -> sleepNanos(30_000_000), () -> {});
        assertTrue(samples.medianNanos() < 10_000_000, samples.medianNanos() + " ns");
    }

    @Test
    void aMinimumSampleRepeatsTheOperationAtTheWarmUpsPace() {
        AtomicInteger calls = new AtomicInteger();
        Runnable oneMillisecond = () -> {
            calls.incrementAndGet();
            sleepNanos(1_000_000);
        };
        new Stopwatch(Stopwatch.Warmup.calls(2), 2, 5e6).time(List.of(oneMillisecond));
        // each pass repeats it about five times (fewer if sleeps overshoot)
        assertTrue(calls.get() >= 2 + 2 * 2, calls + " calls");
        assertTrue(calls.get() <= 2 + 2 * 5, calls + " calls");
    }

    @Test
    void medianAndBestOfThePasses() {
        Stopwatch.Samples samples = new Stopwatch.Samples(new double[] {5, 1, 4, 2}, 0);
        assertEquals(3, samples.medianNanos());
        assertEquals(1, samples.bestNanos());
        assertEquals(3e-9, samples.medianSeconds(), 1e-18);
    }

    @Test
    void badSettingsAreRejected() {
        assertThrows(IllegalArgumentException.class, () -> new Stopwatch(Stopwatch.Warmup.calls(1), 0));
        assertThrows(IllegalArgumentException.class, () -> Stopwatch.Warmup.calls(-1));
        assertThrows(IllegalArgumentException.class, () -> Stopwatch.Warmup.seconds(Double.NaN));
        assertThrows(IllegalArgumentException.class, () -> new Stopwatch(new Stopwatch.Warmup(0, 0), 1, 1e6));
    }

    private static void sleepNanos(long nanos) {
        long end = System.nanoTime() + nanos;
        while (System.nanoTime() < end) {
            LockSupport.parkNanos(end - System.nanoTime());
        }
    }
}
