package dev.aule.bench;

/** One contender's attention at one shape, inputs in place and output checked: each {@link #run()} is one forward. */
public interface PreparedAttention extends AutoCloseable {
    /** One forward call, the thing timed. */
    void run();

    /** Releases native sessions and buffers. */
    @Override
    void close();
}
