package dev.aule.spi;

import dev.aule.AttentionOptions;

/**
 * Which keys each query row sees. Causal masking and the window both bound a row to one
 * contiguous key interval, so a row is described by its first and last visible key.
 *
 * <p>With {@code offset = keyLen - queryLen} (bottom-right alignment), row {@code i} sees key
 * {@code j} when {@code i + offset - left <= j <= i + offset + right}, {@code -1} meaning unbounded,
 * and {@code 0 <= j < keyLen}.
 *
 * @param queryLen rows {@code Sq}
 * @param keyLen keys {@code Sk}
 * @param left keys visible before the diagonal, -1 = unbounded
 * @param right keys visible after the diagonal (0 when causal), -1 = unbounded
 */
public record Visibility(int queryLen, int keyLen, int left, int right) {

    /**
     * The visibility of a call.
     *
     * @param queryLen rows {@code Sq}
     * @param keyLen keys {@code Sk}
     * @param options its window and causal flag
     * @return the visibility
     */
    public static Visibility of(int queryLen, int keyLen, AttentionOptions options) {
        return new Visibility(queryLen, keyLen, options.windowLeft(), options.effectiveWindowRight());
    }

    /**
     * {@code keyLen - queryLen}: the diagonal of row {@code i} is key {@code i + offset}.
     *
     * @return the offset
     */
    public long offset() {
        return (long) keyLen - queryLen;
    }

    /**
     * First visible key of row {@code i}; may exceed {@link #last(int)} when the row sees nothing.
     *
     * @param i the row (query index)
     * @return the key index
     */
    public int first(int i) {
        if (left < 0) {
            return 0;
        }
        return (int) Math.min(keyLen, Math.max(0, i + offset() - left));
    }

    /**
     * Last visible key of row {@code i}; may be below {@link #first(int)} when the row sees nothing.
     *
     * @param i the row (query index)
     * @return the key index
     */
    public int last(int i) {
        long diagonal = i + offset();
        if (right < 0) {
            return keyLen - 1;
        }
        return (int) Math.max(-1, Math.min(keyLen - 1L, diagonal + right));
    }

    /**
     * Number of keys row {@code i} sees.
     *
     * @param i the row (query index)
     * @return the count, 0 or more
     */
    public int count(int i) {
        return Math.max(0, last(i) - first(i) + 1);
    }

    /**
     * Visible (row, key) pairs of one head.
     *
     * @return the pair count
     */
    public long pairs() {
        long total = 0;
        for (int i = 0; i < queryLen; i++) {
            total += count(i);
        }
        return total;
    }
}
