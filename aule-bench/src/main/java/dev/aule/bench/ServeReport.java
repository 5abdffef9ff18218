package dev.aule.bench;

/**
 * What a simulated serving run measured. Times are wall-clock on this machine; memory counts key
 * and value bytes.
 *
 * @param requests requests completed
 * @param steps scheduler steps (each: admit and prefill arrivals, then one decode token per running request)
 * @param promptTokens prompt tokens prefilled (the shared system prompt once)
 * @param generatedTokens tokens decoded
 * @param seconds wall time of the whole loop
 * @param stepP50Millis median step latency
 * @param stepP99Millis 99th percentile step latency
 * @param meanBatch mean number of requests decoding per step
 * @param preemptions requests sent back to the queue because the pool ran out of blocks
 * @param peakPagedBytes most bytes of blocks in use at once
 * @param peakContiguousBytes most bytes per-request contiguous caches (each sized to its request's final length,
 *        the shared prompt copied into each) would have held at once for the same running requests
 * @param poolBytes bytes of the whole block pool
 */
public record ServeReport(
        int requests,
        long steps,
        long promptTokens,
        long generatedTokens,
        double seconds,
        double stepP50Millis,
        double stepP99Millis,
        double meanBatch,
        int preemptions,
        long peakPagedBytes,
        long peakContiguousBytes,
        long poolBytes) {

    /** Generated tokens per second of wall time. */
    public double tokensPerSecond() {
        return generatedTokens / seconds;
    }

    /** Prompt and generated tokens per second of wall time. */
    public double allTokensPerSecond() {
        return (promptTokens + generatedTokens) / seconds;
    }
}
