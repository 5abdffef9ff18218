package dev.aule;

import java.util.Set;

/**
 * What a backend can do. Auto-selection ({@link Backends#selected(java.util.function.Predicate)}) runs each
 * call on the backend of highest priority whose capabilities cover it.
 *
 * @param maxHeadDim largest head dim of q, k and v it accepts
 * @param dtypes storage types it reads and writes
 * @param backward whether it computes gradients
 * @param masks whether it honours dense masks, additive biases, MaskMods and ScoreMods
 *              ({@link AttentionOptions#hasMasksOrScoreMods()}); calls using them are rejected otherwise
 * @param serving whether it has the serving entry points: {@link AttentionBackend#forwardCached},
 *                {@link AttentionBackend#pagedAttention} and {@link AttentionBackend#forwardVarlen}
 */
public record Capabilities(int maxHeadDim, Set<DType> dtypes, boolean backward, boolean masks, boolean serving) {
    public Capabilities {
        dtypes = Set.copyOf(dtypes);
    }

    /** A backend without serving entry points. */
    public Capabilities(int maxHeadDim, Set<DType> dtypes, boolean backward, boolean masks) {
        this(maxHeadDim, dtypes, backward, masks, false);
    }

    /** A backend without masks, programmable scores and serving entry points. */
    public Capabilities(int maxHeadDim, Set<DType> dtypes, boolean backward) {
        this(maxHeadDim, dtypes, backward, false, false);
    }
}
