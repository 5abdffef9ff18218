package dev.aule.serving;

/**
 * StreamingLLM's cache policy (Xiao et al., "Efficient Streaming Language Models with Attention Sinks", ICLR 2024;
 * Hugging Face's {@code SinkCache}): a sequence keeps its first {@code sinkTokens} tokens (the attention sinks) and
 * its most recent {@code window} tokens, and drops the ones between, so a generation of any length runs in bounded
 * memory. Given to {@link PagedKvCache#newSequence(StreamingPolicy)}.
 *
 * <p>In a {@link PagedKvCache} the policy works in whole blocks, as vLLM frees sliding-window blocks: the sink region
 * is the first {@code sinkTokens} tokens rounded up to whole blocks ({@link #sinkBlocks}), and a block after it is
 * released once all its tokens are older than the {@code window} most recent, so a sequence keeps between
 * {@code window} and {@code window + blockSize - 1} recent tokens and never holds more than
 * {@link #maxBlocks} blocks. Attention sees exactly the kept tokens, in position order.
 *
 * @param sinkTokens tokens kept from the start of the sequence, at least 0 (StreamingLLM uses 4)
 * @param window most recent tokens kept, at least 1
 */
public record StreamingPolicy(int sinkTokens, int window) {
    /** Checks the bounds. */
    public StreamingPolicy {
        if (sinkTokens < 0 || window < 1) {
            throw new IllegalArgumentException(
                    "sinkTokens, window: need sinkTokens >= 0 and window >= 1, got " + sinkTokens + " and " + window);
        }
    }

    /**
     * Blocks of the sink region.
     *
     * @param blockSize tokens per block, at least 1
     * @return {@code ceil(sinkTokens / blockSize)}
     */
    public int sinkBlocks(int blockSize) {
        return Math.ceilDiv(sinkTokens, blockSize);
    }

    /**
     * The most blocks a sequence under this policy holds (while appending, before shared blocks are copied).
     *
     * @param blockSize tokens per block, at least 1
     * @return {@code sinkBlocks + ceil(window / blockSize) + 1}
     */
    public int maxBlocks(int blockSize) {
        return sinkBlocks(blockSize) + Math.ceilDiv(window, blockSize) + 1;
    }
}
