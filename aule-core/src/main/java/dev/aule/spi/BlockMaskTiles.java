package dev.aule.spi;

import dev.aule.mask.BlockMask;

/**
 * How a kernel tile reads a {@link BlockMask}: a tile covers whole logical blocks or parts of them, of one
 * or several query heads (a GQA tile), and takes the combined status of everything it touches.
 */
public final class BlockMaskTiles {
    private BlockMaskTiles() {}

    /**
     * The combined status of the rectangle of queries {@code [i0, i1]} and keys {@code [j0, j1]} (inclusive)
     * for batch {@code b} and query heads {@code [h0, h1]}: EMPTY when every block it touches is, FULL when
     * every block is, else PARTIAL. Blocks cut by the rectangle's edges count whole, so EMPTY and FULL are
     * exact for the rectangle and PARTIAL only means "ask the MaskMod".
     *
     * @param mask the block mask
     * @param b the batch entry
     * @param h0 the first query head
     * @param h1 the last query head
     * @param i0 the first query row
     * @param i1 the last query row
     * @param j0 the first key
     * @param j1 the last key
     * @return what the rectangle holds
     */
    public static BlockMask.Status status(BlockMask mask, int b, int h0, int h1, int i0, int i1, int j0, int j1) {
        boolean anyVisible = false;
        boolean allVisible = true;
        int hFirst = mask.heads() == 1 ? 0 : h0;
        int hLast = mask.heads() == 1 ? 0 : h1;
        for (int h = hFirst; h <= hLast; h++) {
            for (int qb = i0 / BlockMask.BLOCK; qb <= i1 / BlockMask.BLOCK; qb++) {
                for (int kb = j0 / BlockMask.BLOCK; kb <= j1 / BlockMask.BLOCK; kb++) {
                    BlockMask.Status s = mask.status(b, h, qb, kb);
                    anyVisible |= s != BlockMask.Status.EMPTY;
                    allVisible &= s == BlockMask.Status.FULL;
                }
            }
        }
        return !anyVisible ? BlockMask.Status.EMPTY : allVisible ? BlockMask.Status.FULL : BlockMask.Status.PARTIAL;
    }
}
