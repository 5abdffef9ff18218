package dev.aule.bench;

import dev.aule.Tensor;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Setup;

/** Prefill forward on the {@link ForwardShapes}: the shapes of the CPU speed targets. */
public class ForwardBenchmark extends ForwardShapes {
    @Param({"cpu"})
    public String backend;

    @Setup
    public void setUp() {
        prepare(backend);
    }

    @Benchmark
    public Tensor forward() {
        impl.forward(q, k, v, out, null, options);
        return out;
    }
}
