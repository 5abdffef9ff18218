package dev.aule.mask;

import dev.aule.AttentionOptions;

import java.util.Objects;

/**
 * A programmable mask: whether query {@code qIdx} of batch {@code b} and query head {@code h} may
 * attend to key {@code kvIdx}. Indices are 0-based logical positions in q and in k; under GQA,
 * {@code h} is the query head. A pair the mask hides never influences the row.
 *
 * <p>Set with {@link AttentionOptions.Builder#maskMod(MaskMod)} (every pair evaluated) or, to skip
 * the work of blocks it hides, through a {@link BlockMask} built once per shape. Implementations must
 * be pure (same answer for the same arguments) and safe to call from many threads; the CPU kernel
 * calls them in its inner loop, where the JIT can inline a lambda.
 */
@FunctionalInterface
public interface MaskMod {

    /**
     * Whether query {@code qIdx} sees key {@code kvIdx}.
     *
     * @param b the batch entry
     * @param h the query head
     * @param qIdx the query position, 0-based
     * @param kvIdx the key position, 0-based
     * @return true when it sees it
     */
    boolean visible(int b, int h, int qIdx, int kvIdx);

    /**
     * Visible where both are.
     *
     * @param other the other MaskMod
     * @return the intersection
     */
    default MaskMod and(MaskMod other) {
        Objects.requireNonNull(other, "other");
        return (b, h, q, kv) -> visible(b, h, q, kv) && other.visible(b, h, q, kv);
    }

    /**
     * Visible where either is.
     *
     * @param other the other MaskMod
     * @return the union
     */
    default MaskMod or(MaskMod other) {
        Objects.requireNonNull(other, "other");
        return (b, h, q, kv) -> visible(b, h, q, kv) || other.visible(b, h, q, kv);
    }

    /**
     * Causal aligned top-left: {@code kvIdx <= qIdx}. Equals {@link AttentionOptions.Builder#causal}
     * (aligned bottom-right) when {@code Sq == Sk}; for a query block at the end of a longer key
     * sequence use {@link #causal(int)}.
     *
     * @return the mask
     */
    static MaskMod causal() {
        return (b, h, q, kv) -> kv <= q;
    }

    /**
     * Causal with query {@code qIdx} at key position {@code qIdx + offset}: {@code kvIdx <= qIdx + offset}.
     *
     * @param offset key position of query 0
     * @return the mask
     */
    static MaskMod causal(int offset) {
        return (b, h, q, kv) -> kv <= q + offset;
    }

    /**
     * Causal sliding window: the key at the query's own position and the {@code left} before it,
     * {@code qIdx - left <= kvIdx <= qIdx}.
     *
     * @param left keys visible before the query's own, at least 0
     * @return the mask
     */
    static MaskMod slidingWindow(int left) {
        if (left < 0) {
            throw new IllegalArgumentException("left: must be >= 0, got " + left);
        }
        return (b, h, q, kv) -> kv <= q && q - kv <= left;
    }

    /**
     * Prefix-LM: the first {@code prefixLen} keys are visible to every query, the rest causally.
     *
     * @param prefixLen keys every query sees, at least 0
     * @return the mask
     */
    static MaskMod prefixLm(int prefixLen) {
        if (prefixLen < 0) {
            throw new IllegalArgumentException("prefixLen: must be >= 0, got " + prefixLen);
        }
        return (b, h, q, kv) -> kv < prefixLen || kv <= q;
    }

    /**
     * Document masking for packed sequences: a query sees only keys of its own document. {@code documents[i]}
     * is the document id of token {@code i}, for queries and keys alike (self-attention over one packed
     * sequence, {@code Sq == Sk == documents.length}). Combine with {@link #causal()} for causal packing.
     *
     * @param documents the document id of each token (copied)
     * @return the mask
     */
    static MaskMod document(int[] documents) {
        Objects.requireNonNull(documents, "documents");
        return document(documents, documents);
    }

    /**
     * Document masking with separate ids for queries ({@code queryDocuments[qIdx]}) and keys
     * ({@code keyDocuments[kvIdx]}). The arrays are copied; their lengths must be the call's Sq and Sk.
     *
     * @param queryDocuments the document id of each query
     * @param keyDocuments the document id of each key
     * @return the mask
     */
    static MaskMod document(int[] queryDocuments, int[] keyDocuments) {
        int[] qd = Objects.requireNonNull(queryDocuments, "queryDocuments").clone();
        int[] kd = Objects.requireNonNull(keyDocuments, "keyDocuments").clone();
        return (b, h, q, kv) -> qd[q] == kd[kv];
    }
}
