package dev.aule.bench;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Setup;

import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;

/**
 * The machine's streaming read rate on all cores over as many bytes as a decode call reads: the
 * yardstick of decode's bytes per second. {@code context} gives the bytes as one sequence of
 * {@link DecodeBenchmark} would hold them; a batch of {@code n} sequences reads {@code n} times the context.
 */
@OutputTimeUnit(TimeUnit.MICROSECONDS)
public class BandwidthBenchmark extends BenchmarkSettings {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;

    @Param({"4096", "32768"})
    public int context;

    private float[] data;

    @Setup
    public void setUp() {
        data = new float[(int) (DecodeBenchmark.bytes(context) / Float.BYTES)];
        java.util.Arrays.fill(data, 1f);
    }

    @Benchmark
    public double read() {
        int chunks = 4 * Runtime.getRuntime().availableProcessors();
        int per = data.length / chunks;
        int step = 4 * F.length();
        return IntStream.range(0, chunks)
                .parallel()
                .mapToDouble(c -> {
                    // Four independent sums: one would wait on the add latency per vector, which caps the rate
                    // below what the caches deliver (about half of L2 and L3 speed with 256-bit vectors).
                    FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
                    int i = c * per;
                    int end = i + per;
                    for (; i + step <= end; i += step) {
                        a0 = a0.add(FloatVector.fromArray(F, data, i));
                        a1 = a1.add(FloatVector.fromArray(F, data, i + F.length()));
                        a2 = a2.add(FloatVector.fromArray(F, data, i + 2 * F.length()));
                        a3 = a3.add(FloatVector.fromArray(F, data, i + 3 * F.length()));
                    }
                    for (; i < end; i += F.length()) {
                        a0 = a0.add(FloatVector.fromArray(F, data, i));
                    }
                    return a0.add(a1).add(a2.add(a3)).reduceLanes(VectorOperators.ADD);
                })
                .sum();
    }
}
