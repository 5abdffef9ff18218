package dev.aule.models;

import java.util.EnumMap;
import java.util.Map;

/**
 * Wall-clock time an encoder spent in each stage of its forward passes, summed over the passes it was given to
 * ({@link BertEncoder#encode(java.util.List, java.util.List, EncoderTimings)}): where a model's time goes, for
 * benchmarks. Not thread-safe: one timings object per thread.
 */
public final class EncoderTimings {
    /** A stage of the forward pass. */
    public enum Stage {
        /** Embedding lookups and their LayerNorm. */
        EMBEDDINGS,
        /** The dense layers, with their bias, activation and residual sums. */
        DENSE,
        /** Attention, with the copy of its output into the hidden states. */
        ATTENTION,
        /** The LayerNorms after each block. */
        LAYER_NORMS
    }

    private final long[] nanos = new long[Stage.values().length];
    private int passes;

    /** An empty record. */
    public EncoderTimings() {}

    void add(Stage stage, long elapsedNanos) {
        nanos[stage.ordinal()] += elapsedNanos;
    }

    void pass() {
        passes++;
    }

    /** {@return the forward passes recorded} */
    public int passes() {
        return passes;
    }

    /**
     * Nanoseconds spent in a stage.
     *
     * @param stage the stage
     * @return its time over all passes recorded
     */
    public long nanos(Stage stage) {
        return nanos[stage.ordinal()];
    }

    /** {@return the time of every stage together} */
    public long totalNanos() {
        long sum = 0;
        for (long n : nanos) {
            sum += n;
        }
        return sum;
    }

    /** {@return each stage's share of the total, in stage order} */
    public Map<Stage, Double> shares() {
        Map<Stage, Double> shares = new EnumMap<>(Stage.class);
        double total = Math.max(1, totalNanos());
        for (Stage s : Stage.values()) {
            shares.put(s, nanos[s.ordinal()] / total);
        }
        return shares;
    }

    /** Forgets what was recorded. */
    public void reset() {
        java.util.Arrays.fill(nanos, 0);
        passes = 0;
    }
}
