package dev.aule.bench;

import java.util.OptionalLong;

/** One contender's attention at one shape, inputs in place and output checked: each {@link #run()} is one forward. */
public interface PreparedAttention extends AutoCloseable {
    /** One forward call, the thing timed. */
    void run();

    /**
     * The device time of the last {@link #run()} on this thread, from the device's own clock (GPU timestamps
     * around its submission), for contenders that run on a device; empty for the others or when not measured.
     *
     * @return nanoseconds, or empty
     */
    default OptionalLong lastDeviceNanos() {
        return OptionalLong.empty();
    }

    /** Releases native sessions and buffers. */
    @Override
    void close();
}
