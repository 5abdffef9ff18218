package dev.aule.bench;

import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Setup;

import java.util.SplittableRandom;

/**
 * An F32 GEMM on all cores ({@code 2 n^3} FLOPs) on the attention kernels' own product kernel: how close that kernel
 * comes to the FMA peak ({@link PeakBenchmark}) on a plain matrix product.
 */
public class GemmBenchmark extends BenchmarkSettings {
    @Param({"2048"})
    public int n;

    private float[] a;
    private float[] b;
    private float[] c;

    @Setup
    public void setUp() {
        SplittableRandom rnd = new SplittableRandom(7);
        a = new float[n * n];
        b = new float[n * n];
        c = new float[n * n];
        for (int i = 0; i < a.length; i++) {
            a[i] = (float) rnd.nextDouble();
            b[i] = (float) rnd.nextDouble();
        }
    }

    @Benchmark
    public float[] sgemm() {
        Sgemm.multiply(a, b, c, n);
        return c;
    }
}
