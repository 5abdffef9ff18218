package dev.aule.serving;

/**
 * An append needs more room than a cache has: more positions than a {@link KvCache}'s capacity, or
 * more blocks than a {@link PagedKvCache} has free. The cache is unchanged when this is thrown, so a
 * scheduler can free or preempt sequences and retry.
 */
public final class KvCacheFullException extends IllegalStateException {
    private static final long serialVersionUID = 1L;

    /**
     * An exception that says which sequence is full.
     *
     * @param message the sequence, its length and the capacity
     */
    public KvCacheFullException(String message) {
        super(message);
    }
}
