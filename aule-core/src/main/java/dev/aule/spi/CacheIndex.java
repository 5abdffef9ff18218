package dev.aule.spi;

/**
 * Which keys of a contiguous cache each query batch entry attends (FlashAttention's {@code cache_seqlens},
 * {@code cache_batch_idx} and {@code cache_leftpad}): batch entry {@code b} of q reads row
 * {@code cacheBatchIdx[b]} of the caches {@code [Bc, Hkv, capacity, D]}, positions
 * {@code [cacheLeftpad[b], cacheLens[b])} of it. A null {@code cacheBatchIdx} is the identity (entry {@code b}
 * reads row {@code b}, so {@code Bc} equals q's batch); a null {@code cacheLeftpad} starts every sequence at 0.
 * Rows may repeat (several queries against one cached prompt), and {@code Bc} may differ from q's batch.
 *
 * <p>A plain carrier: it checks nothing and holds the caller's arrays as they are. {@link ServingShapes#cached(
 * dev.aule.Tensor, dev.aule.Tensor, dev.aule.Tensor, CacheIndex, dev.aule.Tensor, dev.aule.Tensor,
 * dev.aule.AttentionOptions, Capabilities)} copies them and validates the copies before a backend reads them.
 *
 * @param cacheLens the end of each batch entry's keys in its row (its cached tokens), one per batch entry of q
 * @param cacheBatchIdx the cache row of each batch entry of q, or null for the identity
 * @param cacheLeftpad the first key of each batch entry in its row, or null for 0
 */
public record CacheIndex(int[] cacheLens, int[] cacheBatchIdx, int[] cacheLeftpad) {

    /**
     * Entry {@code b} against the first {@code cacheLens[b]} keys of row {@code b}: the plain cached call.
     *
     * @param cacheLens cached tokens of each batch entry
     * @return the index with no row mapping and no left pad
     */
    public static CacheIndex ofLengths(int[] cacheLens) {
        return new CacheIndex(cacheLens, null, null);
    }

    /** {@return whether this index is the plain cached call: identity rows and no left pad} */
    public boolean isPlain() {
        return cacheBatchIdx == null && cacheLeftpad == null;
    }
}
