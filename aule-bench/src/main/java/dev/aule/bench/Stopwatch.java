package dev.aule.bench;

import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The hand timing beside JMH ({@code aule bench}, {@code aule demo}, {@link DecodeRatios},
 * {@link MaskRatios}): each operation is warmed up, then all are timed in interleaved passes, each
 * pass timing every operation once, so that on a shared machine a busy moment slows every operation
 * of a pass alike. Callers keep the median of the passes (the odd slow pass does not move it) or the
 * best (the time the machine gave when it was least disturbed).
 *
 * @param warmup         how long each operation runs, untimed, before the passes
 * @param passes         timed passes, at least 1
 * @param minSampleNanos a pass repeats an operation for at least this long, at the pace the warm-up
 *                       measured, and samples its mean per call; 0 times one call per pass
 */
public record Stopwatch(Warmup warmup, int passes, double minSampleNanos) {
    private static final com.sun.management.ThreadMXBean THREADS =
            (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();

    public Stopwatch {
        if (passes < 1) {
            throw new IllegalArgumentException("passes: must be at least 1, got " + passes);
        }
        if (!(minSampleNanos >= 0)) {
            throw new IllegalArgumentException("minSampleNanos: must be >= 0, got " + minSampleNanos);
        }
        if (minSampleNanos > 0 && warmup.calls() == 0 && warmup.seconds() == 0) {
            throw new IllegalArgumentException("minSampleNanos: needs a warm-up to measure the pace by, got none");
        }
    }

    /** One call per pass. */
    public Stopwatch(Warmup warmup, int passes) {
        this(warmup, passes, 0);
    }

    /**
     * The warm-up of each operation: at least {@code calls} calls and at least {@code seconds}, so
     * the JIT has compiled it.
     */
    public record Warmup(int calls, double seconds) {
        public Warmup {
            if (calls < 0) {
                throw new IllegalArgumentException("calls: must be >= 0, got " + calls);
            }
            if (!(seconds >= 0)) {
                throw new IllegalArgumentException("seconds: must be >= 0, got " + seconds);
            }
        }

        public static Warmup calls(int calls) {
            return new Warmup(calls, 0);
        }

        public static Warmup seconds(double seconds) {
            return new Warmup(0, seconds);
        }
    }

    /**
     * What the passes measured of one operation.
     *
     * @param nanosPerCall          per pass, the nanoseconds of one call
     * @param allocatedBytesPerCall Java-heap bytes allocated per call by all threads, over all passes
     *                              (native memory is not seen)
     */
    public record Samples(double[] nanosPerCall, long allocatedBytesPerCall) {
        public Samples {
            nanosPerCall = nanosPerCall.clone();
        }

        @Override
        public double[] nanosPerCall() {
            return nanosPerCall.clone();
        }

        public double medianNanos() {
            double[] sorted = nanosPerCall.clone();
            Arrays.sort(sorted);
            int mid = sorted.length / 2;
            return sorted.length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
        }

        public double bestNanos() {
            return Arrays.stream(nanosPerCall).min().orElseThrow();
        }

        public double medianSeconds() {
            return medianNanos() / 1e9;
        }
    }

    /** Times one operation, running {@code untimed} before each of its calls (to reset an output, say). */
    public Samples time(Runnable untimed, Runnable operation) {
        if (minSampleNanos > 0) {
            throw new IllegalStateException(
                    "untimed steps need one call per pass, but minSampleNanos is " + minSampleNanos);
        }
        return time(List.of(operation), untimed).getFirst();
    }

    /** Times the operations, warmed up one after another and then interleaved; results in their order. */
    public List<Samples> time(List<? extends Runnable> operations) {
        return time(operations, () -> {});
    }

    private List<Samples> time(List<? extends Runnable> operations, Runnable untimed) {
        int n = operations.size();
        int[] callsPerSample = new int[n];
        for (int c = 0; c < n; c++) {
            callsPerSample[c] = warmUp(operations.get(c), untimed);
        }
        double[][] nanos = new double[n][passes];
        long[] allocated = new long[n];
        for (int pass = 0; pass < passes; pass++) {
            for (int c = 0; c < n; c++) {
                Runnable operation = operations.get(c);
                untimed.run();
                // The allocation counter is read outside the timed span: it walks every thread.
                long heapBefore = THREADS.getTotalThreadAllocatedBytes();
                long start = System.nanoTime();
                for (int i = 0; i < callsPerSample[c]; i++) {
                    operation.run();
                }
                nanos[c][pass] = (double) (System.nanoTime() - start) / callsPerSample[c];
                allocated[c] += THREADS.getTotalThreadAllocatedBytes() - heapBefore;
            }
        }
        List<Samples> results = new ArrayList<>();
        for (int c = 0; c < n; c++) {
            long calls = (long) passes * callsPerSample[c];
            results.add(new Samples(nanos[c], Math.max(0, allocated[c] / calls)));
        }
        return results;
    }

    /** Runs the warm-up; returns the calls a pass makes so one sample lasts {@code minSampleNanos}. */
    private int warmUp(Runnable operation, Runnable untimed) {
        long start = System.nanoTime();
        long end = start + (long) (warmup.seconds() * 1e9);
        int calls = 0;
        while (calls < warmup.calls() || System.nanoTime() < end) {
            untimed.run();
            operation.run();
            calls++;
        }
        if (minSampleNanos == 0) {
            return 1;
        }
        double perCall = (double) (System.nanoTime() - start) / calls;
        return (int) Math.max(1, Math.ceil(minSampleNanos / perCall));
    }
}
