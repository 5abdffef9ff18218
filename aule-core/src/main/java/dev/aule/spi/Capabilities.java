package dev.aule.spi;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;

import java.util.EnumSet;
import java.util.Objects;
import java.util.Set;

/**
 * What a backend can do. Auto-selection ({@link Backends#selected(java.util.function.Predicate)}) runs each
 * call on the backend of highest priority whose capabilities cover it. Built by name:
 * {@code Capabilities.of(512, EnumSet.allOf(DType.class), Feature.BACKWARD, Feature.SERVING)}.
 *
 * @param maxHeadDim largest head dim of q, k and v it accepts
 * @param dtypes storage types it reads and writes
 * @param features what it has beyond the forward pass
 */
public record Capabilities(int maxHeadDim, Set<DType> dtypes, Set<Feature> features) {

    /** What a backend may have beyond the plain forward pass. */
    public enum Feature {
        /** It computes gradients: {@link AttentionBackend#backward}. */
        BACKWARD,
        /**
         * It honours dense masks, additive biases, MaskMods and ScoreMods
         * ({@link AttentionOptions#hasMasksOrScoreMods()}); calls using them are rejected otherwise.
         */
        MASKS,
        /**
         * It honours dense masks, additive biases, MaskMods and BlockMasks in the forward pass only: a backend with
         * this and not {@link #MASKS} refuses ScoreMods and (without {@link #MASKS_BACKWARD}) masked backward
         * passes, and auto-selection passes
         * such calls to one that has {@link #MASKS}. For a backend that evaluates masks on the host into a form
         * its kernels read (a ScoreMod, an arbitrary function of the score, has no such exact form).
         */
        MASKS_FORWARD,
        /**
         * With {@link #MASKS_FORWARD}: the backward pass honours the same dense masks, biases, MaskMods and
         * BlockMasks (biases get no gradient, as on every backend). ScoreMods stay refused and go elsewhere.
         */
        MASKS_BACKWARD,
        /**
         * It has the serving entry points: {@link AttentionBackend#forwardCached},
         * {@link AttentionBackend#forwardPaged} and {@link AttentionBackend#forwardVarlen}.
         */
        SERVING,
        /** It applies dropout ({@link AttentionOptions#hasDropout()}) in the forward and backward passes. */
        DROPOUT,
        /**
         * It takes ALiBi slopes per batch entry and query head ({@link AttentionOptions#alibiBatches()} above 0);
         * per-head slopes need no feature.
         */
        ALIBI_PER_BATCH,
        /**
         * It adds sink logits ({@link AttentionOptions#hasSinks()}) to the softmax of every serving and dense
         * forward, and takes their LSE in the backward; calls with sinks are rejected otherwise.
         */
        SINKS,
        /** It reads INT8 and FP8 caches: {@link AttentionBackend#forwardQuantized}. */
        QUANTIZED_KV,
        /**
         * It computes in its own memory (a GPU's), not the host's: the host tensors of a call are copied to it and
         * the results back. Selection of calls on host-memory caches ({@link ServingPredicates#serving},
         * {@link ServingPredicates#quantized}) passes over such a backend, since every decode step would copy the
         * whole cache; caches allocated on it ({@code KvCache.allocate(backend, ...)}) reach it without selection.
         */
        DEVICE_MEMORY
    }

    /** Checks {@code maxHeadDim} and copies the sets. */
    public Capabilities {
        if (maxHeadDim < 1) {
            throw new IllegalArgumentException("maxHeadDim: " + maxHeadDim + " must be at least 1");
        }
        dtypes = Set.copyOf(Objects.requireNonNull(dtypes, "dtypes"));
        features = Set.copyOf(Objects.requireNonNull(features, "features"));
    }

    /**
     * Capabilities with the given features (none: a forward-only backend without masks).
     *
     * @param maxHeadDim the largest head dim, at least 1
     * @param dtypes the element types it computes
     * @param features what it has beyond a forward pass
     * @return the capabilities
     */
    public static Capabilities of(int maxHeadDim, Set<DType> dtypes, Feature... features) {
        EnumSet<Feature> set = EnumSet.noneOf(Feature.class);
        for (Feature f : features) {
            set.add(Objects.requireNonNull(f, "features"));
        }
        return new Capabilities(maxHeadDim, dtypes, set);
    }

    /** {@return whether it has {@link Feature#BACKWARD}} */
    public boolean backward() {
        return features.contains(Feature.BACKWARD);
    }

    /** {@return whether it has {@link Feature#MASKS}} */
    public boolean masks() {
        return features.contains(Feature.MASKS);
    }

    /** {@return whether it has {@link Feature#MASKS_FORWARD} or {@link Feature#MASKS}} */
    public boolean forwardMasks() {
        return masks() || features.contains(Feature.MASKS_FORWARD);
    }

    /** {@return whether it has {@link Feature#MASKS}, or {@link Feature#MASKS_FORWARD} with {@link Feature#MASKS_BACKWARD}} */
    public boolean backwardMasks() {
        return masks() || (features.contains(Feature.MASKS_FORWARD) && features.contains(Feature.MASKS_BACKWARD));
    }

    /**
     * Whether it runs the masks, biases and mods of {@code options} (none set: true).
     *
     * @param options the call's options
     * @param backward whether the call is a backward pass
     * @return true when {@link #masks()}, or when {@link #forwardMasks()} covers a forward without a ScoreMod
     *     ({@link #backwardMasks()} a backward without one)
     */
    public boolean runsMasks(AttentionOptions options, boolean backward) {
        return !options.hasMasksOrScoreMods()
                || masks()
                || ((backward ? backwardMasks() : forwardMasks()) && options.scoreMod() == null);
    }

    /** {@return whether it has {@link Feature#DROPOUT}} */
    public boolean dropout() {
        return features.contains(Feature.DROPOUT);
    }

    /** {@return whether it has {@link Feature#ALIBI_PER_BATCH}} */
    public boolean alibiPerBatch() {
        return features.contains(Feature.ALIBI_PER_BATCH);
    }

    /** {@return whether it has {@link Feature#SINKS}} */
    public boolean sinks() {
        return features.contains(Feature.SINKS);
    }

    /** {@return whether it has {@link Feature#SERVING}} */
    public boolean serving() {
        return features.contains(Feature.SERVING);
    }

    /** {@return whether it has {@link Feature#QUANTIZED_KV}} */
    public boolean quantizedKv() {
        return features.contains(Feature.QUANTIZED_KV);
    }

    /** {@return whether it has {@link Feature#DEVICE_MEMORY}} */
    public boolean deviceMemory() {
        return features.contains(Feature.DEVICE_MEMORY);
    }
}
