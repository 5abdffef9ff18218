package dev.aule.bench;

import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Param;

/**
 * The machine's F32 FMA peak on all cores ({@link FmaPeak}: independent FMAs in registers), the yardstick of the
 * report's "% peak": {@code 2 x 12 x lanes x trips x cores} FLOPs per operation.
 */
public class PeakBenchmark extends BenchmarkSettings {
    /** Loop trips per thread and operation. */
    @Param({"20000000"})
    public long trips;

    @Benchmark
    public double fmaPeak() {
        return FmaPeak.gflops(Runtime.getRuntime().availableProcessors(), trips);
    }

    /** The FLOPs of one {@link #fmaPeak} operation in the JVM that ran it (its lanes and cores). */
    static double flops(long trips, int lanes, int cores) {
        return 2.0 * 12 * lanes * trips * cores;
    }
}
