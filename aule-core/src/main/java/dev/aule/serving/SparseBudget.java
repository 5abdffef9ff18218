package dev.aule.serving;

/**
 * How many blocks a query-aware sparse decode step reads per query head: the {@code recentBlocks} most recent
 * blocks of the sequence (the last one possibly partial) always, and the {@code topBlocks} other blocks whose key
 * summaries bound the query's scores highest (Quest's token budget is {@code (topBlocks + recentBlocks) *
 * blockSize}). A sequence with no more blocks than the budget is attended exactly.
 *
 * @param topBlocks blocks chosen by their bound, at least 0
 * @param recentBlocks most recent blocks always read, at least 1 (the newest tokens, including the one being
 *     decoded, are always seen)
 */
public record SparseBudget(int topBlocks, int recentBlocks) {
    /**
     * Checks the counts.
     *
     * @throws IllegalArgumentException when {@code topBlocks < 0} or {@code recentBlocks < 1}
     */
    public SparseBudget {
        if (topBlocks < 0) {
            throw new IllegalArgumentException("topBlocks: must be >= 0, got " + topBlocks);
        }
        if (recentBlocks < 1) {
            throw new IllegalArgumentException(
                    "recentBlocks: must be >= 1 (the newest block holds the token being decoded), got " + recentBlocks);
        }
    }

    /**
     * A budget of about {@code tokens} tokens: {@code recentBlocks} recent blocks and the rest chosen by bound.
     *
     * @param tokens tokens to read per query head, at least {@code recentBlocks * blockSize}
     * @param blockSize the cache's tokens per block, at least 1
     * @param recentBlocks most recent blocks always read, at least 1
     * @return {@code (tokens / blockSize - recentBlocks, recentBlocks)}
     * @throws IllegalArgumentException when the arguments break those rules
     */
    public static SparseBudget ofTokens(int tokens, int blockSize, int recentBlocks) {
        if (blockSize < 1) {
            throw new IllegalArgumentException("blockSize: must be >= 1, got " + blockSize);
        }
        if (recentBlocks < 1 || tokens / blockSize < recentBlocks) {
            throw new IllegalArgumentException("tokens: " + tokens + " must hold at least recentBlocks (" + recentBlocks
                    + ", at least 1) blocks of " + blockSize);
        }
        return new SparseBudget(tokens / blockSize - recentBlocks, recentBlocks);
    }

    /** {@return the blocks read per query head, at most} */
    public long blocks() {
        return (long) topBlocks + recentBlocks;
    }
}
