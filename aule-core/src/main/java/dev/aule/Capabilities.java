package dev.aule;

import java.util.Set;

/**
 * What a backend can do.
 *
 * @param maxHeadDim largest head dim of q, k and v it accepts
 * @param dtypes storage types it reads and writes
 * @param backward whether it computes gradients
 */
public record Capabilities(int maxHeadDim, Set<DType> dtypes, boolean backward) {
    public Capabilities {
        dtypes = Set.copyOf(dtypes);
    }
}
