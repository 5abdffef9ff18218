package dev.aule.spi;

import dev.aule.Tensor;

/**
 * One sequence of a serving call (a cache entry, a packed sequence), as zero-copy batch-1 views, so
 * a backend runs it as a plain forward: query rows {@code q} {@code [1, Hq, rows, D]}, outputs
 * {@code out} and {@code lse} (null when not asked for), and keys and values {@code [1, Hkv, keys, D]},
 * both null when the sequence has no key (its rows are then 0 with LSE {@code -inf}).
 */
public record SequenceView(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse) {

    /** Keys this sequence's rows may see. */
    public int keyLen() {
        return k == null ? 0 : k.seqLen();
    }
}
