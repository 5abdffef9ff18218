package dev.aule.bench;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;

/** The machine's streaming read rate on all cores over as many bytes as a decode call reads. */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector"})
public class BandwidthBenchmark {
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
        return IntStream.range(0, chunks).parallel().mapToDouble(c -> {
            FloatVector acc = FloatVector.zero(F);
            for (int i = c * per, end = i + per; i < end; i += F.length()) {
                acc = acc.add(FloatVector.fromArray(F, data, i));
            }
            return acc.reduceLanes(VectorOperators.ADD);
        }).sum();
    }
}
