package dev.aule.spi;

import dev.aule.Tensor;

/**
 * One sequence of a serving call (a cache entry, a packed sequence), as zero-copy batch-1 views, so
 * a backend runs it as a plain forward: query rows {@code q} {@code [1, Hq, rows, D]}, outputs
 * {@code out} and {@code lse} (null when not asked for), and keys and values {@code [1, Hkv, keys, D]},
 * both null when the sequence has no key (its rows are then 0 with LSE {@code -inf}).
 *
 * @param q query rows {@code [1, Hq, rows, D]}
 * @param k keys {@code [1, Hkv, keys, D]}, or null
 * @param v values {@code [1, Hkv, keys, Dv]}, or null
 * @param out receives the output {@code [1, Hq, rows, Dv]}
 * @param lse receives each row's log-sum-exp, or null
 * @param index the sequence's index in its call (its batch entry, or its place in a packed batch): the batch index
 *     dropout and per-batch ALiBi slopes see
 */
public record SequenceView(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, int index) {

    /**
     * Keys this sequence's rows may see.
     *
     * @return the keys, 0 when there are none
     */
    public int keyLen() {
        return k == null ? 0 : k.seqLen();
    }
}
