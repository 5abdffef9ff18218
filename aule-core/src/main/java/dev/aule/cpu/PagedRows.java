package dev.aule.cpu;

import dev.aule.Tensor;

/**
 * The keys (or values) of one sequence of a paged cache: logical row {@code j} lives in slot
 * {@code j % blockSize} of block {@code blockTable[j / blockSize]} of {@code cache}, a tensor
 * {@code [numBlocks, Hkv, blockSize, D]}. A read of consecutive rows is copied page by page; when
 * the cache's layout puts a block's rows right after the previous block's (head-major pools, as
 * {@code PagedKvCache} keeps, and the vLLM layout), a run of adjacent block ids in the table is one
 * copy. The table is validated by the caller before this is built; the batch index is ignored
 * (one sequence).
 */
final class PagedRows implements KvRows {
    private final Tensor cache;
    private final int[] blockTable;
    private final int blockSize;
    /** The cache as one sequence {@code [1, Hkv, numBlocks * blockSize, D]} when blocks follow each other, else null. */
    private final Tensor flat;

    PagedRows(Tensor cache, int[] blockTable) {
        this.cache = cache;
        this.blockTable = blockTable;
        this.blockSize = cache.seqLen();
        this.flat = flatView(cache);
    }

    private static Tensor flatView(Tensor cache) {
        long[] strides = cache.strides();
        long rows = (long) cache.batch() * cache.seqLen();
        if (strides[0] != cache.seqLen() * strides[2] || rows > Integer.MAX_VALUE) {
            return null;
        }
        return Tensor.of(cache.memory(), cache.dtype(), new long[] {1, cache.heads(), rows, cache.headDim()},
                new long[] {0, strides[1], strides[2], strides[3]});
    }

    @Override
    public int headDim() {
        return cache.headDim();
    }

    /** Never in place: a sequence's rows are spread over blocks. */
    @Override
    public HeapRows inPlace(int lanes) {
        return null;
    }

    @Override
    public void readRows(int b, int head, int j0, int count, float[] dst, int dstOffset, int dstStride) {
        int j = j0;
        int end = j0 + count;
        int at = dstOffset;
        while (j < end) {
            int page = j / blockSize;
            int slot = j % blockSize;
            int n = Math.min(blockSize - slot, end - j);
            if (flat != null) {
                // Extend the copy over the following pages while their blocks are adjacent.
                while (j + n < end && blockTable[page + 1] == blockTable[page] + 1) {
                    page++;
                    n += Math.min(blockSize, end - j - n);
                }
                flat.readRows(0, head, blockTable[j / blockSize] * blockSize + slot, n, dst, at, dstStride);
            } else {
                cache.readRows(blockTable[page], head, slot, n, dst, at, dstStride);
            }
            j += n;
            at += n * dstStride;
        }
    }
}
