package dev.aule.cpu;

import dev.aule.Tensor;

/**
 * Where the forward kernel reads key and value rows from: a plain tensor, or one sequence of a
 * paged cache. Either way rows arrive as float in the kernel's packed scratch, so prefill, decode,
 * cached and paged attention all run the same tiles.
 */
sealed interface KvRows permits KvRows.OfTensor, PagedRows {

    /** Elements of one row. */
    int headDim();

    /**
     * Copies rows {@code j0 .. j0 + count - 1} of head {@code (b, head)} into {@code dst} as float,
     * row {@code r} at {@code dst[dstOffset + r * dstStride]}.
     */
    void readRows(int b, int head, int j0, int count, float[] dst, int dstOffset, int dstStride);

    /** The rows as a {@code float[]} the kernel may read in place ({@link HeapRows}), or null when they must be copied. */
    HeapRows inPlace(int lanes);

    static KvRows of(Tensor t) {
        return new OfTensor(t);
    }

    /** Rows of a tensor; bulk copies when they are contiguous F32. */
    record OfTensor(Tensor t) implements KvRows {
        @Override
        public int headDim() {
            return t.headDim();
        }

        @Override
        public void readRows(int b, int head, int j0, int count, float[] dst, int dstOffset, int dstStride) {
            t.readRows(b, head, j0, count, dst, dstOffset, dstStride);
        }

        @Override
        public HeapRows inPlace(int lanes) {
            return HeapRows.of(t, lanes);
        }
    }
}
