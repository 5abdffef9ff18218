package dev.aule.cpu;

import dev.aule.Tensor;

/**
 * The keys (or values) of one sequence of a paged cache: logical row {@code j} lives in slot
 * {@code j % blockSize} of block {@code blockTable[j / blockSize]} of {@code cache}, a tensor
 * {@code [numBlocks, Hkv, blockSize, D]}. A read of consecutive rows is copied page by page, so a
 * key block that spans pages costs one bulk copy per page. The table is validated by the caller
 * before this is built; the batch index is ignored (one sequence).
 */
record PagedRows(Tensor cache, int[] blockTable, int blockSize) implements KvRows {

    @Override
    public int headDim() {
        return cache.headDim();
    }

    @Override
    public void readRows(int b, int head, int j0, int count, float[] dst, int dstOffset, int dstStride) {
        int j = j0;
        int end = j0 + count;
        int at = dstOffset;
        while (j < end) {
            int slot = j % blockSize;
            int n = Math.min(blockSize - slot, end - j);
            cache.readRows(blockTable[j / blockSize], head, slot, n, dst, at, dstStride);
            j += n;
            at += n * dstStride;
        }
    }
}
