package dev.aule.bench;

import java.lang.management.ManagementFactory;
import java.util.Arrays;
import java.util.SplittableRandom;

/** Times prepared contenders and the machine's GEMM rate in the calling JVM, for {@code aule bench}. */
public final class Sweep {
    private static final com.sun.management.ThreadMXBean THREADS =
            (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();

    private Sweep() {
    }

    /**
     * Untimed calls until both {@code warmupCalls} calls and {@code warmupSeconds} have passed (so the
     * JIT has compiled the kernels), then the median of {@code runs} timed calls and their mean heap allocation.
     */
    public static Measurement measure(String name, BenchShape shape, PreparedAttention attention, int warmupCalls,
                                      double warmupSeconds, int runs) {
        long warmupEnd = System.nanoTime() + (long) (warmupSeconds * 1e9);
        for (int i = 0; i < warmupCalls || System.nanoTime() < warmupEnd; i++) {
            attention.run();
        }
        long[] nanos = new long[runs];
        long allocatedBefore = THREADS.getTotalThreadAllocatedBytes();
        for (int r = 0; r < runs; r++) {
            long start = System.nanoTime();
            attention.run();
            nanos[r] = System.nanoTime() - start;
        }
        long allocated = (THREADS.getTotalThreadAllocatedBytes() - allocatedBefore) / runs;
        return new Measurement(shape, name, median(nanos) / 1e9, Math.max(0, allocated));
    }

    /** GFLOP/s of the bench's Vector API SGEMM ({@code 2 n^3} FLOPs) on all cores: the best of {@code runs} after one warm-up. */
    public static double gemmGflops(int n, int runs) {
        SplittableRandom rnd = new SplittableRandom(7);
        float[] a = new float[n * n];
        float[] b = new float[n * n];
        float[] c = new float[n * n];
        for (int i = 0; i < a.length; i++) {
            a[i] = (float) rnd.nextDouble();
            b[i] = (float) rnd.nextDouble();
        }
        Sgemm.multiply(a, b, c, n);
        long best = Long.MAX_VALUE;
        for (int r = 0; r < runs; r++) {
            long start = System.nanoTime();
            Sgemm.multiply(a, b, c, n);
            best = Math.min(best, System.nanoTime() - start);
        }
        return 2.0 * n * n * n / best;
    }

    private static double median(long[] nanos) {
        long[] sorted = nanos.clone();
        Arrays.sort(sorted);
        int mid = sorted.length / 2;
        return sorted.length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2.0;
    }
}
