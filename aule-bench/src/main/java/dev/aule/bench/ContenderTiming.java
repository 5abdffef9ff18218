package dev.aule.bench;

/**
 * A contender's median time at one shape and the Java heap it allocated per call.
 *
 * @param shape          the shape timed
 * @param contender      backend or peer name
 * @param seconds        median wall-clock seconds of one forward
 * @param allocatedBytes Java-heap bytes allocated per call by all threads (native memory, such as ONNX Runtime's, is not seen)
 * @param deviceSeconds  median device seconds of one forward by the device's clock ({@link
 *                       PreparedAttention#lastDeviceNanos}), NaN for a contender without one
 */
public record ContenderTiming(
        BenchShape shape, String contender, double seconds, long allocatedBytes, double deviceSeconds) {
    /** A timing without device time. */
    public ContenderTiming(BenchShape shape, String contender, double seconds, long allocatedBytes) {
        this(shape, contender, seconds, allocatedBytes, Double.NaN);
    }

    public double gflops() {
        return shape.flops() / seconds / 1e9;
    }

    /** {@return whether the device time was measured} */
    public boolean hasDeviceTime() {
        return !Double.isNaN(deviceSeconds);
    }
}
