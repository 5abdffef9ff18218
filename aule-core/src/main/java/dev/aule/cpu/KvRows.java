package dev.aule.cpu;

import dev.aule.Tensor;

/**
 * Where the forward kernel reads key and value rows from: a plain tensor, or one sequence of a
 * paged cache. Either way rows arrive as float in the kernel's packed scratch, or are read in
 * place run by run, so prefill, decode, cached and paged attention all run the same tiles.
 */
sealed interface KvRows permits KvRows.OfTensor, PagedRows, QuantRows {

    /** Elements of one row. */
    int headDim();

    /**
     * Copies rows {@code j0 .. j0 + count - 1} of head {@code (b, head)} into {@code dst} as float,
     * row {@code r} at {@code dst[dstOffset + r * dstStride]}; half-precision rows are widened by {@code math}.
     */
    void readRows(TileMath math, int b, int head, int j0, int count, float[] dst, int dstOffset, int dstStride);

    /**
     * The stored rows as memory the kernel may read in place ({@link InPlaceRows}), or null when they must be
     * copied. Logical row {@code j} is stored row {@link #storedRow}{@code (j)} of that view.
     */
    InPlaceRows inPlace(int lanes);

    /** The row of the {@link #inPlace} view that holds logical row {@code j}. */
    int storedRow(int j);

    /**
     * How many logical rows from {@code j} on (at most {@code max}, all below the sequence's length) are
     * stored one row stride apart, so that one in-place read covers them.
     */
    int contiguousRows(int j, int max);

    static KvRows of(Tensor t) {
        return new OfTensor(t, HalfRows.of(t));
    }

    /** Rows of a tensor; bulk copies when they are contiguous F32, vector widening when contiguous F16/BF16. */
    record OfTensor(Tensor t, HalfRows half) implements KvRows {
        @Override
        public int headDim() {
            return t.headDim();
        }

        @Override
        public void readRows(
                TileMath math, int b, int head, int j0, int count, float[] dst, int dstOffset, int dstStride) {
            if (half != null) {
                half.read(math, b, head, j0, count, dst, dstOffset, dstStride);
            } else {
                t.readRows(b, head, j0, count, dst, dstOffset, dstStride);
            }
        }

        @Override
        public InPlaceRows inPlace(int lanes) {
            return InPlaceRows.of(t, lanes);
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
}
