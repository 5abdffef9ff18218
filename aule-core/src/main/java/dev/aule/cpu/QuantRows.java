package dev.aule.cpu;

import dev.aule.spi.QuantizedKv;

/**
 * The keys (or values) of one sequence of a quantized cache ({@link QuantizedKv}): logical row {@code j} is slot
 * {@code j % blockSize} of block {@code blockTable[j / blockSize]}, 8-bit codes times the (head, block) scale. Rows
 * are dequantized straight from the codes into the kernel's packed scratch a vector at a time ({@link
 * TileMath#dequantize}), never through a widened copy of the cache; there is no in-place view (the kernels'
 * in-place reads are of F32 memory). The table and the scales are the validated copies
 * ({@link dev.aule.spi.QuantizedShapes}); the batch index is ignored (one sequence).
 */
final class QuantRows implements KvRows {
    private final QuantizedKv.Format format;
    private final byte[] codes;
    private final float[] scales;
    private final long[] rowsAbnormal;
    private final int flagWords;
    private final int[] blockTable;
    private final int numBlocks;
    private final int blockSize;
    private final int dim;

    QuantRows(
            QuantizedKv.Format format,
            byte[] codes,
            float[] scales,
            long[] rowsAbnormal,
            int[] blockTable,
            int numBlocks,
            int blockSize,
            int dim) {
        this.format = format;
        this.codes = codes;
        this.scales = scales;
        this.rowsAbnormal = rowsAbnormal;
        this.flagWords = QuantizedKv.flagWords(blockSize);
        this.blockTable = blockTable;
        this.numBlocks = numBlocks;
        this.blockSize = blockSize;
        this.dim = dim;
    }

    @Override
    public int headDim() {
        return dim;
    }

    @Override
    public void readRows(TileMath math, int b, int head, int j0, int count, float[] dst, int dstOffset, int dstStride) {
        int j = j0;
        int end = j0 + count;
        int at = dstOffset;
        while (j < end) {
            int block = blockTable[j / blockSize];
            int slot = j % blockSize;
            int n = Math.min(blockSize - slot, end - j);
            int scaleAt = head * numBlocks + block;
            // Fits an int: validation checked the codes array holds Hkv * numBlocks * blockSize * dim.
            int code = (int) (((long) scaleAt * blockSize + slot) * dim);
            math.dequantize(format, codes, code, dim, n, scales[scaleAt], dst, at, dstStride);
            j += n;
            at += n * dstStride;
        }
    }

    /** {@return the codes' format} */
    QuantizedKv.Format format() {
        return format;
    }

    /** {@return the codes of every head and block} */
    byte[] codes() {
        return codes;
    }

    /** Rows from {@code j} on, at most {@code max}, in {@code j}'s block: one scale, codes {@code dim} apart. */
    int runLength(int j, int max) {
        return Math.min(blockSize - j % blockSize, max);
    }

    /** Index in {@link #codes()} of logical row {@code j}'s first code in {@code head}. */
    int codeOffset(int head, int j) {
        return (int) (((long) (head * numBlocks + blockTable[j / blockSize]) * blockSize + j % blockSize) * dim);
    }

    /** {@return whether the cache keeps per-row flags ({@link QuantizedKv#keyRowsAbnormal}); else kernels scan} */
    boolean hasRowFlags() {
        return rowsAbnormal != null;
    }

    /**
     * The cache's flags of rows {@code j .. j + count - 1} in {@code head} (a run of {@link #runLength}, at most 64):
     * bit {@code i} set when row {@code j + i} may hold an FP8 code that is not a normal number. Only when {@link
     * #hasRowFlags}.
     */
    long abnormalRows(int head, int j, int count) {
        int slot = j % blockSize;
        int word = (head * numBlocks + blockTable[j / blockSize]) * flagWords + (slot >>> 6);
        int shift = slot & 63;
        long bits = rowsAbnormal[word] >>> shift;
        if (shift != 0 && shift + count > 64) { // the run goes on in the next word of the same block
            bits |= rowsAbnormal[word + 1] << (64 - shift);
        }
        return count == 64 ? bits : bits & ((1L << count) - 1);
    }

    /** The scale of logical row {@code j}'s block in {@code head}. */
    float scale(int head, int j) {
        return scales[head * numBlocks + blockTable[j / blockSize]];
    }

    @Override
    public InPlaceRows inPlace(int lanes) {
        return null;
    }

    @Override
    public int storedRow(int j) {
        return j;
    }

    @Override
    public int contiguousRows(int j, int max) {
        return max;
    }
}
