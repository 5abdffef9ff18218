package dev.aule.cpu;

import dev.aule.spi.QuantizedKv;

/**
 * The keys (or values) of one sequence of a quantized cache ({@link QuantizedKv}): logical row {@code j} is slot
 * {@code j % blockSize} of block {@code blockTable[j / blockSize]}, 8-bit codes times the (head, block) scale, keys
 * stored element by element ({@link QuantizedKv#keyCode}) and values row by row ({@link QuantizedKv#valueCode}).
 * Rows are dequantized straight from the codes into the kernel's packed scratch ({@link TileMath#dequantize} for
 * values, a decode table for keys), never through a widened copy of the cache; there is no in-place view (the
 * kernels' in-place reads are of F32 memory). The table and the scales are the validated copies
 * ({@link dev.aule.spi.QuantizedShapes}); the batch index is ignored (one sequence).
 */
final class QuantRows implements KvRows {
    private final QuantizedKv.Format format;
    private final boolean keys;
    private final byte[] codes;
    private final float[] scales;
    private final long[] rowsAbnormal;
    private final int flagWords;
    private final int[] blockTable;
    private final int numBlocks;
    private final int blockSize;
    private final int dim;
    /** Keys: each code's value, by its unsigned byte (what {@code format.decode} gives); null for values. */
    private final float[] decoded;

    /** {@link #decoded}'s tables, one per format by ordinal, made once. */
    private static final float[][] DECODED = decodeTables();

    /** The keys ({@code keys}: stored element by element) or the values (row by row) of one sequence. */
    QuantRows(
            QuantizedKv.Format format,
            boolean keys,
            byte[] codes,
            float[] scales,
            long[] rowsAbnormal,
            int[] blockTable,
            int numBlocks,
            int blockSize,
            int dim) {
        this.format = format;
        this.keys = keys;
        this.codes = codes;
        this.scales = scales;
        this.rowsAbnormal = rowsAbnormal;
        this.flagWords = QuantizedKv.flagWords(blockSize);
        this.blockTable = blockTable;
        this.numBlocks = numBlocks;
        this.blockSize = blockSize;
        this.dim = dim;
        this.decoded = keys ? DECODED[format.ordinal()] : null;
    }

    private static float[][] decodeTables() {
        QuantizedKv.Format[] formats = QuantizedKv.Format.values();
        float[][] tables = new float[formats.length][256];
        for (QuantizedKv.Format format : formats) {
            for (int c = 0; c < 256; c++) {
                tables[format.ordinal()][c] = format.decode((byte) c);
            }
        }
        return tables;
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
            int n = runLength(j, end - j);
            float scale = scale(head, j);
            int code = codeOffset(head, j);
            if (keys) {
                // Element x of the run's keys lies one block size apart from element x - 1: decoded in that order,
                // the codes read in sequence (a vector widening would have to scatter the floats across rows).
                for (int x = 0; x < dim; x++) {
                    for (int r = 0, c = code + x * blockSize, d = at + x; r < n; r++, c++, d += dstStride) {
                        dst[d] = decoded[codes[c] & 0xFF] * scale;
                    }
                }
            } else {
                math.dequantize(format, codes, code, dim, n, scale, dst, at, dstStride);
            }
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

    /**
     * Index in {@link #codes()} of logical row {@code j}'s first code in {@code head}; a key's next element is
     * {@link #keyStride()} further on, a value's next.
     */
    int codeOffset(int head, int j) {
        // Fits an int: validation checked the codes array holds Hkv * numBlocks * blockSize * dim.
        long at = (long) head * numBlocks + blockTable[j / blockSize];
        return (int) (keys ? at * blockSize * dim + j % blockSize : (at * blockSize + j % blockSize) * dim);
    }

    /** {@return whether these are keys, stored element by element (else values, row by row)} */
    boolean keys() {
        return keys;
    }

    /** {@return codes from one element of a key to the next: the block size} */
    int keyStride() {
        return blockSize;
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
