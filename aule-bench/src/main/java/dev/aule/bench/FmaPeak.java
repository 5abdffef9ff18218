package dev.aule.bench;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.util.concurrent.CountDownLatch;

/**
 * The machine's F32 FMA peak as the JVM reaches it: every thread runs a loop of independent Vector API FMAs on
 * values held in registers (no loads or stores in the loop), in the preferred species, all threads at once. This is
 * the ceiling of any F32 kernel on this machine and JVM, measured in the same run as what it is compared with (clock
 * boost, other load and the vector width the JIT uses all count in both).
 *
 * <p>Twelve accumulators per thread cover the latency of the FMA pipes of current x86 and Arm cores (4 cycles x 2
 * pipes needs 8 in flight; 12 leave slack) and fit in 16 vector registers.
 */
public final class FmaPeak {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    /** FMAs per loop trip. */
    private static final int CHAINS = 12;

    private static volatile float sink;

    private FmaPeak() {}

    /** {@return the floats per vector of the species measured} */
    public static int lanes() {
        return F.length();
    }

    /**
     * GFLOP/s of {@code threads} threads each running {@code trips} loop trips (2 FLOPs per lane per FMA), from the
     * first thread's start to the last one's end.
     */
    public static double gflops(int threads, long trips) {
        if (threads < 1 || trips < 1) {
            throw new IllegalArgumentException("threads, trips: must be positive, got " + threads + ", " + trips);
        }
        CountDownLatch start = new CountDownLatch(1);
        CountDownLatch done = new CountDownLatch(threads);
        Thread[] workers = new Thread[threads];
        for (int t = 0; t < threads; t++) {
            workers[t] = new Thread(
                    () -> {
                        try {
                            start.await();
                            sink += run(trips);
                        } catch (InterruptedException e) {
                            Thread.currentThread().interrupt();
                        } finally {
                            done.countDown();
                        }
                    },
                    "aule-fma-peak-" + t);
            workers[t].setDaemon(true);
            workers[t].start();
        }
        long begin = System.nanoTime();
        start.countDown();
        try {
            done.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while measuring the FMA peak", e);
        }
        double seconds = (System.nanoTime() - begin) / 1e9;
        return 2.0 * CHAINS * F.length() * trips * threads / seconds / 1e9;
    }

    /**
     * The peak on all cores: after a warm-up that gets the loop compiled, the best of {@code runs} runs of about
     * {@code seconds} each.
     */
    public static double measure(double seconds, int runs) {
        int threads = Runtime.getRuntime().availableProcessors();
        gflops(threads, 2_000_000); // compiles run() (on-stack replacement, then the whole method)
        gflops(threads, 2_000_000);
        double probe = gflops(threads, 20_000_000);
        long trips = Math.max(1_000_000, (long) (probe * 1e9 * seconds / (2.0 * CHAINS * F.length() * threads)));
        double best = 0;
        for (int r = 0; r < Math.max(1, runs); r++) {
            best = Math.max(best, gflops(threads, trips));
        }
        return best;
    }

    private static float run(long trips) {
        FloatVector a = FloatVector.broadcast(F, 0.999999f);
        FloatVector b = FloatVector.broadcast(F, 1e-7f);
        FloatVector c0 = FloatVector.broadcast(F, 1f), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
        FloatVector c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
        for (long i = 0; i < trips; i++) {
            c0 = c0.fma(a, b);
            c1 = c1.fma(a, b);
            c2 = c2.fma(a, b);
            c3 = c3.fma(a, b);
            c4 = c4.fma(a, b);
            c5 = c5.fma(a, b);
            c6 = c6.fma(a, b);
            c7 = c7.fma(a, b);
            c8 = c8.fma(a, b);
            c9 = c9.fma(a, b);
            c10 = c10.fma(a, b);
            c11 = c11.fma(a, b);
        }
        FloatVector sum = c0.add(c1).add(c2).add(c3).add(c4).add(c5);
        sum = sum.add(c6).add(c7).add(c8).add(c9).add(c10).add(c11);
        return sum.reduceLanes(VectorOperators.ADD);
    }
}
