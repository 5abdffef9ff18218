package dev.aule.bench;

import dev.aule.DType;

/**
 * A simulated serving workload and the cache it runs on.
 *
 * @param requests requests to serve in all
 * @param arrivalsPerStep mean of the Poisson number of requests arriving per decode step
 * @param systemPrompt tokens of the system prompt every request shares (0: none)
 * @param minPrompt shortest own prompt, tokens (at least 1)
 * @param maxPrompt longest own prompt
 * @param minOutput fewest generated tokens (at least 1)
 * @param maxOutput most generated tokens
 * @param maxBatch most requests decoding at once
 * @param blocks blocks in the paged pool
 * @param blockSize tokens per block
 * @param queryHeads {@code Hq}
 * @param kvHeads {@code Hkv}
 * @param headDim {@code D}
 * @param dtype storage of the cache
 * @param seed seeds arrivals, lengths and data
 */
public record ServeConfig(
        int requests,
        double arrivalsPerStep,
        int systemPrompt,
        int minPrompt,
        int maxPrompt,
        int minOutput,
        int maxOutput,
        int maxBatch,
        int blocks,
        int blockSize,
        int queryHeads,
        int kvHeads,
        int headDim,
        DType dtype,
        long seed) {
    public ServeConfig {
        require(requests >= 1, "requests: must be >= 1, got " + requests);
        require(
                arrivalsPerStep > 0 && arrivalsPerStep <= 64,
                "arrivalsPerStep: must be in (0, 64], got " + arrivalsPerStep);
        require(systemPrompt >= 0, "systemPrompt: must be >= 0, got " + systemPrompt);
        require(
                minPrompt >= 1 && maxPrompt >= minPrompt,
                "minPrompt, maxPrompt: need 1 <= min <= max, got " + minPrompt + " and " + maxPrompt);
        require(
                minOutput >= 1 && maxOutput >= minOutput,
                "minOutput, maxOutput: need 1 <= min <= max, got " + minOutput + " and " + maxOutput);
        require(maxBatch >= 1, "maxBatch: must be >= 1, got " + maxBatch);
        require(blockSize >= 1 && blocks >= 1, "blocks, blockSize: must be >= 1, got " + blocks + " and " + blockSize);
        require(
                kvHeads >= 1 && queryHeads >= kvHeads && queryHeads % kvHeads == 0,
                "queryHeads, kvHeads: query heads must be a multiple of KV heads, got " + queryHeads + " and "
                        + kvHeads);
        require(headDim >= 2 && headDim % 2 == 0, "headDim: must be even (RoPE pairs) and >= 2, got " + headDim);
        long longest = (long) systemPrompt + maxPrompt + maxOutput;
        long fits = (long) blocks * blockSize - (systemPrompt + blockSize - 1) / blockSize * (long) blockSize;
        require(
                longest - systemPrompt + blockSize <= fits,
                "blocks: " + blocks + " blocks of " + blockSize
                        + " cannot hold the system prompt and one longest request (" + longest + " tokens)");
        java.util.Objects.requireNonNull(dtype, "dtype");
    }

    /** Longest sequence a request can reach, in tokens. */
    public int longestSequence() {
        return systemPrompt + maxPrompt + maxOutput;
    }

    private static void require(boolean rule, String message) {
        if (!rule) {
            throw new IllegalArgumentException(message);
        }
    }
}
