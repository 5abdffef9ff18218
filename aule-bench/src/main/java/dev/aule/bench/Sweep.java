package dev.aule.bench;

import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/** Times prepared contenders and the machine's GEMM rate in the calling JVM, for {@code aule bench}. */
public final class Sweep {
    private static final com.sun.management.ThreadMXBean THREADS =
            (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();

    private Sweep() {
    }

    /**
     * Times several contenders on one shape, interleaved so that on a shared machine they all see
     * the same background load: each is warmed up (at least {@code warmupCalls} calls and
     * {@code warmupSeconds}, so the JIT has compiled it), then {@code runs} rounds each call every
     * contender once. Reports each one's median and its mean Java-heap allocation per call.
     */
    public static List<Measurement> measure(BenchShape shape, Map<String, PreparedAttention> contenders,
                                            int warmupCalls, double warmupSeconds, int runs) {
        for (PreparedAttention attention : contenders.values()) {
            long warmupEnd = System.nanoTime() + (long) (warmupSeconds * 1e9);
            for (int i = 0; i < warmupCalls || System.nanoTime() < warmupEnd; i++) {
                attention.run();
            }
        }
        List<String> names = List.copyOf(contenders.keySet());
        long[][] nanos = new long[names.size()][runs];
        long[] allocated = new long[names.size()];
        for (int r = 0; r < runs; r++) {
            for (int c = 0; c < names.size(); c++) {
                PreparedAttention attention = contenders.get(names.get(c));
                long heapBefore = THREADS.getTotalThreadAllocatedBytes();
                long start = System.nanoTime();
                attention.run();
                nanos[c][r] = System.nanoTime() - start;
                allocated[c] += THREADS.getTotalThreadAllocatedBytes() - heapBefore;
            }
        }
        List<Measurement> results = new ArrayList<>();
        for (int c = 0; c < names.size(); c++) {
            results.add(new Measurement(shape, names.get(c), median(nanos[c]) / 1e9, Math.max(0, allocated[c] / runs)));
        }
        return results;
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
