package dev.aule.cpu;

import dev.aule.Tensor;

/**
 * The keys (or values) of one sequence of a paged cache: logical row {@code j} lives in slot
 * {@code j % blockSize} of block {@code blockTable[j / blockSize]} of {@code cache}, a tensor
 * {@code [numBlocks, Hkv, blockSize, D]}. A read of consecutive rows is copied page by page; when
 * the cache's layout puts a block's rows right after the previous block's (head-major pools, as
 * {@code PagedKvCache} keeps, and the vLLM layout), a run of adjacent block ids in the table is one
 * copy, or one in-place read for a short (decode) tile. The table is validated by the caller before
 * this is built; the batch index is ignored (one sequence).
 */
final class PagedRows implements KvRows {
    private final Tensor cache;
    private final int[] blockTable;
    private final int blockSize;
    /** The cache as one sequence {@code [1, Hkv, numBlocks * blockSize, D]} when blocks follow each other, else null. */
    private final Tensor flat;
    /** The half-precision rows of {@link #flat} (of the cache when that is null), widened by vectors; null for F32. */
    private final HalfRows half;

    PagedRows(Tensor cache, int[] blockTable) {
        this.cache = cache;
        this.blockTable = blockTable;
        this.blockSize = cache.seqLen();
        this.flat = flatView(cache);
        this.half = HalfRows.of(flat != null ? flat : cache);
    }

    private static Tensor flatView(Tensor cache) {
        long[] strides = cache.strides();
        long rows = (long) cache.batch() * cache.seqLen();
        if (strides[0] != cache.seqLen() * strides[2] || rows > Integer.MAX_VALUE) {
            return null;
        }
        return Tensor.of(
                cache.memory(), cache.dtype(), new long[] {1, cache.heads(), rows, cache.headDim()}, new long[] {
                    0, strides[1], strides[2], strides[3]
                });
    }

    @Override
    public int headDim() {
        return cache.headDim();
    }

    /** The cache as one sequence, when its blocks follow each other; a run of adjacent blocks is then read in place. */
    @Override
    public InPlaceRows inPlace(int lanes) {
        return flat == null ? null : InPlaceRows.of(flat, lanes);
    }

    @Override
    public int storedRow(int j) {
        return blockTable[j / blockSize] * blockSize + j % blockSize;
    }

    /** Rows to the end of {@code j}'s block, extended over the following blocks while their ids are adjacent. */
    @Override
    public int contiguousRows(int j, int max) {
        int page = j / blockSize;
        int n = Math.min(blockSize - j % blockSize, max);
        if (flat == null) {
            return n;
        }
        while (n < max && blockTable[page + 1] == blockTable[page] + 1) {
            page++;
            n += Math.min(blockSize, max - n);
        }
        return n;
    }

    @Override
    public void readRows(TileMath math, int b, int head, int j0, int count, float[] dst, int dstOffset, int dstStride) {
        int j = j0;
        int end = j0 + count;
        int at = dstOffset;
        while (j < end) {
            int n = contiguousRows(j, end - j);
            // A run of adjacent blocks is one stretch of the flat view; otherwise n rows of one block.
            Tensor source = flat != null ? flat : cache;
            int block = flat != null ? 0 : blockTable[j / blockSize];
            int row = flat != null ? storedRow(j) : j % blockSize;
            if (half != null) {
                half.read(math, block, head, row, n, dst, at, dstStride);
            } else {
                source.readRows(block, head, row, n, dst, at, dstStride);
            }
            j += n;
            at += n * dstStride;
        }
    }
}
