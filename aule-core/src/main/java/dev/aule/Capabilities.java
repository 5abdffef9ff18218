package dev.aule;

import java.util.Set;

/**
 * What a backend can do.
 *
 * @param maxHeadDim largest head dim of q, k and v it accepts
 * @param dtypes storage types it reads and writes
 * @param backward whether it computes gradients
 * @param masks whether it honours dense masks, additive biases, MaskMods and ScoreMods
 *              ({@link AttentionOptions#hasMasksOrScoreMods()}); calls using them are rejected otherwise
 */
public record Capabilities(int maxHeadDim, Set<DType> dtypes, boolean backward, boolean masks) {
    public Capabilities {
        dtypes = Set.copyOf(dtypes);
    }

    /** A backend without masks and programmable scores. */
    public Capabilities(int maxHeadDim, Set<DType> dtypes, boolean backward) {
        this(maxHeadDim, dtypes, backward, false);
    }
}
