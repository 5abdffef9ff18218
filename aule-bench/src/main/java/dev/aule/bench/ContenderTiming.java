package dev.aule.bench;

/**
 * A contender's median time at one shape and the Java heap it allocated per call.
 *
 * @param shape          the shape timed
 * @param contender      backend or peer name
 * @param seconds        median wall-clock seconds of one forward
 * @param allocatedBytes Java-heap bytes allocated per call by all threads (native memory, such as ONNX Runtime's, is not seen)
 */
public record ContenderTiming(BenchShape shape, String contender, double seconds, long allocatedBytes) {
    public double gflops() {
        return shape.flops() / seconds / 1e9;
    }
}
