package dev.aule.bench;

import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The sweep reports the median device time of a contender's timed calls, and none for a host contender. */
class SweepDeviceTimeTest {
    /** Reports 1000 ms for each warm-up call and then 1, 2, 3... ms: only the timed calls may count. */
    private static final class FakeDevice implements PreparedAttention {
        private final int warmup;
        private int calls;

        FakeDevice(int warmup) {
            this.warmup = warmup;
        }

        @Override
        public void run() {
            calls++;
        }

        @Override
        public OptionalLong lastDeviceNanos() {
            return OptionalLong.of(calls <= warmup ? 1_000_000_000L : (calls - warmup) * 1_000_000L);
        }

        @Override
        public void close() {}
    }

    @Test
    void theMedianOfTheTimedCallsDeviceTimes() {
        Map<String, PreparedAttention> contenders = new LinkedHashMap<>();
        contenders.put("device", new FakeDevice(4));
        contenders.put("host", new PreparedAttention() {
            @Override
            public void run() {}

            @Override
            public void close() {}
        });
        List<ContenderTiming> timings = Sweep.measure(new BenchShape(1, 8, 8, false), contenders, 4, 0, 5);
        ContenderTiming device = timings.get(0);
        assertTrue(device.hasDeviceTime());
        assertEquals(3e-3, device.deviceSeconds(), 1e-12, "median of 1..5 ms, warm-up left out");
        assertFalse(timings.get(1).hasDeviceTime());
    }

    @Test
    void aCallWithoutDeviceTimeLeavesTheMedianUnmeasured() {
        Sweep.DeviceTimes times = new Sweep.DeviceTimes();
        times.add(5);
        times.add(-1);
        times.add(7);
        assertTrue(Double.isNaN(times.medianSeconds(3)));
        assertEquals(7e-9, times.medianSeconds(1), 1e-18);
        assertTrue(Double.isNaN(new Sweep.DeviceTimes().medianSeconds(3)), "no calls");
    }

    @Test
    void onlyTheLatestCallsAreKept() {
        Sweep.DeviceTimes times = new Sweep.DeviceTimes();
        for (int i = 1; i <= Sweep.DeviceTimes.KEPT + 10; i++) {
            times.add(i);
        }
        assertEquals((Sweep.DeviceTimes.KEPT + 10) * 1e-9, times.medianSeconds(1), 1e-15);
        assertEquals((Sweep.DeviceTimes.KEPT + 9.5) * 1e-9, times.medianSeconds(2), 1e-15);
    }
}
