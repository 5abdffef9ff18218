package dev.aule.mask;

import java.util.Arrays;
import java.util.Objects;

/**
 * A dense boolean mask, SDPA style: {@code true} means the query may attend to the key. Shape
 * {@code [B or 1, H or 1, Sq, Sk]}: an extent of 1 broadcasts over the call's batch or query heads
 * ({@code H} counts query heads under GQA). Immutable: the factory copies the data, one byte per
 * element, row-major.
 */
public final class AttentionMask {
    private final boolean[] data;
    private final int batch;
    private final int heads;
    private final int queryLen;
    private final int keyLen;

    private AttentionMask(boolean[] data, int batch, int heads, int queryLen, int keyLen) {
        this.data = data;
        this.batch = batch;
        this.heads = heads;
        this.queryLen = queryLen;
        this.keyLen = keyLen;
    }

    /**
     * A mask over {@code data} in row-major {@code [batch, heads, queryLen, keyLen]} order (copied).
     *
     * @param data true where a query sees a key
     * @param batch batch entries, 1 to broadcast
     * @param heads query heads, 1 to broadcast
     * @param queryLen query rows {@code Sq}, at least 1
     * @param keyLen keys {@code Sk}, at least 1
     * @return the mask
     * @throws IllegalArgumentException when an extent is below 1 or {@code data} has another length
     */
    public static AttentionMask of(boolean[] data, int batch, int heads, int queryLen, int keyLen) {
        Objects.requireNonNull(data, "data");
        if (batch < 1 || heads < 1 || queryLen < 1 || keyLen < 1) {
            throw new IllegalArgumentException(
                    "shape: every extent must be >= 1, got " + shapeString(batch, heads, queryLen, keyLen));
        }
        long size = sizeOrMinusOne(batch, heads, queryLen, keyLen);
        if (data.length != size) {
            throw new IllegalArgumentException("data: length " + data.length + " must be batch * heads * queryLen"
                    + " * keyLen = " + (size < 0 ? "more than 2^63-1" : String.valueOf(size)) + " for shape "
                    + shapeString(batch, heads, queryLen, keyLen));
        }
        return new AttentionMask(data.clone(), batch, heads, queryLen, keyLen);
    }

    /**
     * The mask a {@link MaskMod} describes, evaluated for every element of the shape.
     *
     * @param mod the MaskMod
     * @param batch batch entries, 1 to broadcast
     * @param heads query heads, 1 to broadcast
     * @param queryLen query rows {@code Sq}, at least 1
     * @param keyLen keys {@code Sk}, at least 1
     * @return the mask
     */
    public static AttentionMask of(MaskMod mod, int batch, int heads, int queryLen, int keyLen) {
        Objects.requireNonNull(mod, "mod");
        long size = sizeOrMinusOne(batch, heads, queryLen, keyLen);
        if (batch < 1 || heads < 1 || queryLen < 1 || keyLen < 1 || size < 0 || size > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("shape: every extent must be >= 1 and the mask must fit one array, got "
                    + shapeString(batch, heads, queryLen, keyLen));
        }
        boolean[] data = new boolean[(int) size];
        int n = 0;
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                for (int i = 0; i < queryLen; i++) {
                    for (int j = 0; j < keyLen; j++) {
                        data[n++] = mod.visible(b, h, i, j);
                    }
                }
            }
        }
        return new AttentionMask(data, batch, heads, queryLen, keyLen);
    }

    /** {@code batch * heads * queryLen * keyLen}, or -1 when it passes {@code Long.MAX_VALUE}. */
    private static long sizeOrMinusOne(int batch, int heads, int queryLen, int keyLen) {
        try {
            return Math.multiplyExact(
                    Math.multiplyExact((long) batch, heads), Math.multiplyExact((long) queryLen, keyLen));
        } catch (ArithmeticException e) {
            return -1;
        }
    }

    /** {@return the batch entries, 1 when it broadcasts} */
    public int batch() {
        return batch;
    }

    /** {@return the query heads, 1 when it broadcasts} */
    public int heads() {
        return heads;
    }

    /** {@return the query rows {@code Sq}} */
    public int queryLen() {
        return queryLen;
    }

    /** {@return the keys {@code Sk}} */
    public int keyLen() {
        return keyLen;
    }

    /**
     * Whether query {@code i} of batch {@code b} and query head {@code h} sees key {@code j}; extents of 1 broadcast.
     *
     * @param b the batch entry
     * @param h the query head
     * @param i the query
     * @param j the key
     * @return true when it sees it
     */
    public boolean get(int b, int h, int i, int j) {
        int bb = batch == 1 ? 0 : b;
        int hh = heads == 1 ? 0 : h;
        return data[((bb * heads + hh) * queryLen + i) * keyLen + j];
    }

    /**
     * {@code [B, H, Sq, Sk]}.
     *
     * @return the shape as {@code [B, H, Sq, Sk]}
     */
    public String shapeString() {
        return shapeString(batch, heads, queryLen, keyLen);
    }

    private static String shapeString(int b, int h, int sq, int sk) {
        return Arrays.toString(new int[] {b, h, sq, sk});
    }

    @Override
    public String toString() {
        return "AttentionMask" + shapeString();
    }
}
