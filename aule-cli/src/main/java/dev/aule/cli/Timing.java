package dev.aule.cli;

import java.util.Arrays;

/** Wall-clock times of repeated runs; the median shrugs off the odd slow run on a shared machine. */
record Timing(long[] nanos) {
    Timing {
        if (nanos.length == 0) {
            throw new IllegalArgumentException("nanos: at least one run is needed");
        }
        nanos = nanos.clone();
    }

    static Timing of(int runs, Runnable before, Runnable timed) {
        long[] nanos = new long[runs];
        for (int r = 0; r < runs; r++) {
            before.run();
            long start = System.nanoTime();
            timed.run();
            nanos[r] = System.nanoTime() - start;
        }
        return new Timing(nanos);
    }

    double medianSeconds() {
        long[] sorted = nanos.clone();
        Arrays.sort(sorted);
        int mid = sorted.length / 2;
        double median = sorted.length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2.0;
        return median / 1e9;
    }
}
