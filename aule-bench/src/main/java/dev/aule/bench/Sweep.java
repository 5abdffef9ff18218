package dev.aule.bench;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** Times prepared contenders in the calling JVM, for {@code aule bench}. */
public final class Sweep {
    private Sweep() {}

    /**
     * Times several contenders on one shape, interleaved so that on a shared machine they all see
     * the same background load: each is warmed up (at least {@code warmupCalls} calls and
     * {@code warmupSeconds}, so the JIT has compiled it), then {@code runs} passes each call every
     * contender once. Reports each one's median, its mean Java-heap allocation per call and, for a contender
     * whose calls report device time ({@link PreparedAttention#lastDeviceNanos}), the median device time of its
     * timed calls.
     */
    public static List<ContenderTiming> measure(
            BenchShape shape,
            Map<String, PreparedAttention> contenders,
            int warmupCalls,
            double warmupSeconds,
            int runs) {
        List<String> names = List.copyOf(contenders.keySet());
        Stopwatch stopwatch = new Stopwatch(new Stopwatch.Warmup(warmupCalls, warmupSeconds), runs);
        List<DeviceTimes> device = new ArrayList<>();
        List<Runnable> calls = new ArrayList<>();
        for (String n : names) {
            PreparedAttention p = contenders.get(n);
            DeviceTimes times = new DeviceTimes();
            device.add(times);
            // Read right after the call, on its thread: the device time is the calling thread's last call's.
            calls.add(() -> {
                p.run();
                times.add(p.lastDeviceNanos().orElse(-1));
            });
        }
        List<Stopwatch.Samples> samples = stopwatch.time(calls);
        List<ContenderTiming> results = new ArrayList<>();
        for (int c = 0; c < names.size(); c++) {
            Stopwatch.Samples s = samples.get(c);
            results.add(new ContenderTiming(
                    shape,
                    names.get(c),
                    s.medianSeconds(),
                    s.allocatedBytesPerCall(),
                    device.get(c).medianSeconds(s.nanosPerCall().length)));
        }
        return results;
    }

    /**
     * The device times of one contender's calls, the latest {@link #KEPT} of them, in primitive storage so that
     * recording one allocates nothing in the timed span.
     */
    static final class DeviceTimes {
        static final int KEPT = 4096;
        private final long[] ring = new long[KEPT];
        private long count;

        void add(long nanos) {
            ring[(int) (count++ % KEPT)] = nanos;
        }

        /** The median of the last {@code timed} calls' device times (warm-up calls come first), NaN unless all were measured. */
        double medianSeconds(int timed) {
            int n = (int) Math.min(Math.min(timed, count), KEPT);
            if (n == 0) {
                return Double.NaN;
            }
            long[] last = new long[n];
            for (int i = 0; i < n; i++) {
                last[i] = ring[(int) ((count - n + i) % KEPT)];
            }
            java.util.Arrays.sort(last);
            if (last[0] < 0) {
                return Double.NaN;
            }
            double median = n % 2 == 1 ? last[n / 2] : (last[n / 2 - 1] + last[n / 2]) / 2.0;
            return median / 1e9;
        }
    }
}
