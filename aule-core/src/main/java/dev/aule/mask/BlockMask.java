package dev.aule.mask;

import java.util.Arrays;
import java.util.Objects;

/**
 * A {@link MaskMod} with its block sparsity, computed once per shape so kernels skip work: every
 * {@value #BLOCK} x {@value #BLOCK} block of (query, key) positions is {@linkplain Status#EMPTY empty}
 * (no visible pair: skipped), {@linkplain Status#FULL full} (every pair visible: the MaskMod is not
 * called) or {@linkplain Status#PARTIAL partial} (the MaskMod decides each pair).
 *
 * <p>Blocks are logical, 16 query positions by 16 key positions, and kernels combine the blocks their
 * own tiles cover (a tile is empty when all its blocks are, full when all are). 16 divides every tile
 * size the backends use (the CPU forward's 64-row tiles and 32- or 64-key blocks, the backward's square
 * tiles), so aligned tiles see exactly the sparsity of their blocks; a GQA tile, whose rows interleave
 * the group's heads, combines the blocks of each head it holds.
 *
 * <p>Building evaluates the MaskMod at every pair, on the calling thread: O(Sq * Sk) calls per
 * (batch, head) it is built for (about 0.1 to 0.2 s for 8192 x 8192 with an inlined lambda).
 * When the MaskMod ignores {@code b} and {@code h} (causal, window, document...), build it with
 * {@link #of(MaskMod, int, int)}: one grid, evaluated at {@code b = h = 0}, serves every batch and head,
 * and the mask can be reused by every call of that {@code Sq x Sk}.
 */
public final class BlockMask {
    /** Query and key positions per block side. */
    public static final int BLOCK = 16;

    /** What a block holds. */
    public enum Status {
        /** No pair in the block is visible: it is skipped. */
        EMPTY,
        /** Some pairs are visible: the MaskMod is asked at each. */
        PARTIAL,
        /** Every pair is visible: the MaskMod is not asked. */
        FULL
    }

    /** Indexed by the byte codes below ({@code Status.values()} would copy the array on every call). */
    private static final Status[] STATUSES = Status.values();

    private static final byte EMPTY = 0;
    private static final byte PARTIAL = 1;
    private static final byte FULL = 2;

    private final MaskMod mod;
    private final int batch;
    private final int heads;
    private final int queryLen;
    private final int keyLen;
    private final int queryBlocks;
    private final int keyBlocks;
    private final byte[] status; // [batch][heads][queryBlocks][keyBlocks]

    private BlockMask(MaskMod mod, int batch, int heads, int queryLen, int keyLen) {
        this.mod = mod;
        this.batch = batch;
        this.heads = heads;
        this.queryLen = queryLen;
        this.keyLen = keyLen;
        this.queryBlocks = Math.ceilDiv(queryLen, BLOCK);
        this.keyBlocks = Math.ceilDiv(keyLen, BLOCK);
        long size;
        try {
            size = Math.multiplyExact(
                    Math.multiplyExact((long) batch, heads), Math.multiplyExact((long) queryBlocks, keyBlocks));
        } catch (ArithmeticException e) {
            size = Long.MAX_VALUE;
        }
        if (size > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("shape: " + (size == Long.MAX_VALUE ? "more than 2^63-1" : size)
                    + " blocks of " + Arrays.toString(new int[] {batch, heads, queryLen, keyLen})
                    + " do not fit one array");
        }
        this.status = new byte[(int) size];
        // On the calling thread: a MaskMod lambda of a class still in its static initializer would
        // deadlock a parallel build (pool threads wait for the class initialisation, which waits for them).
        for (int row = 0; row < batch * heads * queryBlocks; row++) {
            classifyRow(row);
        }
    }

    /**
     * For a MaskMod that ignores {@code b} and {@code h}: one grid for every batch and head.
     *
     * @param mod the MaskMod
     * @param queryLen query rows {@code Sq}, at least 1
     * @param keyLen keys {@code Sk}, at least 1
     * @return the block mask
     */
    public static BlockMask of(MaskMod mod, int queryLen, int keyLen) {
        return of(mod, 1, 1, queryLen, keyLen);
    }

    /**
     * For a MaskMod that depends on the batch or head: a grid per {@code (b, h)}. {@code batch} and
     * {@code heads} may be 1 to broadcast (evaluated at index 0) or the call's {@code B} and {@code Hq}.
     *
     * @param mod the MaskMod
     * @param batch batch entries, 1 to broadcast
     * @param heads query heads, 1 to broadcast
     * @param queryLen query rows {@code Sq}, at least 1
     * @param keyLen keys {@code Sk}, at least 1
     * @return the block mask
     */
    public static BlockMask of(MaskMod mod, int batch, int heads, int queryLen, int keyLen) {
        Objects.requireNonNull(mod, "mod");
        if (batch < 1 || heads < 1 || queryLen < 1 || keyLen < 1) {
            throw new IllegalArgumentException("shape: every extent must be >= 1, got "
                    + Arrays.toString(new int[] {batch, heads, queryLen, keyLen}));
        }
        return new BlockMask(mod, batch, heads, queryLen, keyLen);
    }

    private void classifyRow(int row) {
        int qb = row % queryBlocks;
        int bh = row / queryBlocks;
        int b = bh / heads;
        int h = bh % heads;
        int i0 = qb * BLOCK;
        int i1 = Math.min(queryLen, i0 + BLOCK);
        for (int kb = 0; kb < keyBlocks; kb++) {
            int j0 = kb * BLOCK;
            int j1 = Math.min(keyLen, j0 + BLOCK);
            int visible = 0;
            for (int i = i0; i < i1; i++) {
                for (int j = j0; j < j1; j++) {
                    if (mod.visible(b, h, i, j)) {
                        visible++;
                    }
                }
            }
            status[row * keyBlocks + kb] = visible == 0 ? EMPTY : visible == (i1 - i0) * (j1 - j0) ? FULL : PARTIAL;
        }
    }

    /** {@return the MaskMod the blocks were computed from} */
    public MaskMod maskMod() {
        return mod;
    }

    /** {@return the batch entries of the grid, 1 when it broadcasts} */
    public int batch() {
        return batch;
    }

    /** {@return the query heads of the grid, 1 when it broadcasts} */
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
     * The status of block ({@code queryBlock}, {@code keyBlock}) for batch {@code b} and query head {@code h}.
     *
     * @param b the batch entry
     * @param h the query head
     * @param queryBlock the block of query rows
     * @param keyBlock the block of keys
     * @return what the block holds
     */
    public Status status(int b, int h, int queryBlock, int keyBlock) {
        return STATUSES[code(b, h, queryBlock, keyBlock)];
    }

    /**
     * Visible pairs of batch {@code b}, query head {@code h}: counts FULL blocks whole and asks the MaskMod in partial
     *     ones.
     *
     * @param b the batch entry
     * @param h the query head
     * @return the number of visible (query, key) pairs
     */
    public long visiblePairs(int b, int h) {
        long pairs = 0;
        for (int qb = 0; qb < queryBlocks; qb++) {
            for (int kb = 0; kb < keyBlocks; kb++) {
                int i0 = qb * BLOCK;
                int j0 = kb * BLOCK;
                int i1 = Math.min(queryLen, i0 + BLOCK);
                int j1 = Math.min(keyLen, j0 + BLOCK);
                switch (code(b, h, qb, kb)) {
                    case FULL -> pairs += (long) (i1 - i0) * (j1 - j0);
                    case PARTIAL -> {
                        for (int i = i0; i < i1; i++) {
                            for (int j = j0; j < j1; j++) {
                                if (mod.visible(b, h, i, j)) {
                                    pairs++;
                                }
                            }
                        }
                    }
                    default -> {}
                }
            }
        }
        return pairs;
    }

    private int code(int b, int h, int queryBlock, int keyBlock) {
        int bb = batch == 1 ? 0 : b;
        int hh = heads == 1 ? 0 : h;
        return status[((bb * heads + hh) * queryBlocks + queryBlock) * keyBlocks + keyBlock];
    }

    /**
     * Share of blocks that are not empty (for one broadcast grid, or averaged over all).
     *
     * @return the share of non-empty blocks, from 0 to 1
     */
    public double density() {
        long live = 0;
        for (byte s : status) {
            if (s != EMPTY) {
                live++;
            }
        }
        return status.length == 0 ? 0 : (double) live / status.length;
    }

    @Override
    public String toString() {
        return "BlockMask[" + batch + " x " + heads + " x " + queryLen + " x " + keyLen + ", " + BLOCK + "x" + BLOCK
                + " blocks, density " + String.format("%.3f", density()) + "]";
    }
}
