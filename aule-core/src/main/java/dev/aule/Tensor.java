package dev.aule;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Objects;

/**
 * A rank-4 view {@code [batch, heads, seq, headDim]} over memory the caller owns: a {@code float[]}
 * or any {@link MemorySegment}, heap or off-heap. Views never copy; strides (in elements, not bytes)
 * let one tensor describe BHSD, BSHD or any other layout. Elements are in native byte order.
 *
 * <p>A tensor is immutable in its shape and layout and safe to share between threads; its
 * elements are as thread-safe as the memory underneath.
 */
public final class Tensor {
    /*
     * Invariant of every tensor (the factories check it with exact arithmetic): the element count and the
     * byte offset one past the last addressed element both fit in a long. So offset arithmetic on valid
     * indices (offsetOf, sequence, TensorChecks.addressedRegion) never overflows and needs no exact checks.
     */
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;

    private final MemorySegment memory;
    private final DType dtype;
    private final int batch;
    private final int heads;
    private final int seqLen;
    private final int headDim;
    private final long strideB;
    private final long strideH;
    private final long strideS;
    private final long strideD;

    private Tensor(MemorySegment memory, DType dtype, int[] shape, long[] strides) {
        this.memory = memory;
        this.dtype = dtype;
        this.batch = shape[0];
        this.heads = shape[1];
        this.seqLen = shape[2];
        this.headDim = shape[3];
        this.strideB = strides[0];
        this.strideH = strides[1];
        this.strideS = strides[2];
        this.strideD = strides[3];
    }

    /**
     * A BHSD-contiguous F32 view of {@code data}, whose length must be exactly the element count.
     *
     * @param data the elements, BHSD order
     * @param batch batch entries {@code B}, at least 1
     * @param heads heads {@code H}, at least 1
     * @param seq positions {@code S} per sequence, at least 1
     * @param headDim elements {@code D} per row, at least 1
     * @return a view of {@code data} (not a copy)
     */
    public static Tensor of(float[] data, int batch, int heads, int seq, int headDim) {
        Objects.requireNonNull(data, "data");
        int[] shape = checkShape(batch, heads, seq, headDim);
        long count = countOrMinusOne(shape);
        if (data.length != count) {
            throw new IllegalArgumentException("data: length " + data.length + " does not match shape "
                    + Arrays.toString(shape) + " (" + countString(count) + ")");
        }
        return new Tensor(MemorySegment.ofArray(data), DType.F32, shape, contiguousStrides(shape));
    }

    /**
     * A BSHD ({@code [batch, seq, heads, headDim]} in memory, the layout most engines keep) F32 view
     * of {@code data}, exposed with the logical shape {@code [batch, heads, seq, headDim]}.
     *
     * @param data the elements, BSHD order
     * @param batch batch entries {@code B}, at least 1
     * @param seq positions {@code S} per sequence, at least 1
     * @param heads heads {@code H}, at least 1
     * @param headDim elements {@code D} per row, at least 1
     * @return a view of {@code data} (not a copy)
     */
    public static Tensor ofBshd(float[] data, int batch, int seq, int heads, int headDim) {
        Objects.requireNonNull(data, "data");
        int[] shape = checkShape(batch, heads, seq, headDim);
        long count = countOrMinusOne(shape);
        if (data.length != count) {
            throw new IllegalArgumentException("data: length " + data.length + " does not match BSHD shape [" + batch
                    + ", " + seq + ", " + heads + ", " + headDim + "] (" + countString(count) + ")");
        }
        long[] strides = {(long) seq * heads * headDim, headDim, (long) heads * headDim, 1};
        return new Tensor(MemorySegment.ofArray(data), DType.F32, shape, strides);
    }

    /**
     * A view of {@code memory} with any layout. {@code shape} is {@code [batch, heads, seq, headDim]},
     * every extent at least 1, with at most {@code 2^63 - 1} elements in all; {@code strides} are in
     * elements and non-negative, and the byte offset past the last element they address fits in a
     * {@code long}. The segment must cover every element the shape and strides address.
     *
     * @param memory the elements
     * @param dtype the element type
     * @param shape {@code [batch, heads, seq, headDim]}
     * @param strides strides in elements, in shape order
     * @return the view
     * @throws IllegalArgumentException when a rule above is broken
     */
    public static Tensor of(MemorySegment memory, DType dtype, long[] shape, long[] strides) {
        Objects.requireNonNull(memory, "memory");
        Objects.requireNonNull(dtype, "dtype");
        Objects.requireNonNull(shape, "shape");
        Objects.requireNonNull(strides, "strides");
        if (shape.length != 4) {
            throw new IllegalArgumentException("shape: rank must be 4 [batch, heads, seq, headDim], got rank "
                    + shape.length + " " + Arrays.toString(shape));
        }
        if (strides.length != 4) {
            throw new IllegalArgumentException(
                    "strides: rank must be 4 like shape, got rank " + strides.length + " " + Arrays.toString(strides));
        }
        int[] dims = new int[4];
        for (int i = 0; i < 4; i++) {
            if (shape[i] < 1 || shape[i] > Integer.MAX_VALUE) {
                throw new IllegalArgumentException(
                        "shape: every extent must be in [1, 2^31-1], got " + Arrays.toString(shape));
            }
            if (strides[i] < 0) {
                throw new IllegalArgumentException("strides: must be non-negative, got " + Arrays.toString(strides));
            }
            dims[i] = (int) shape[i];
        }
        if (countOrMinusOne(dims) < 0) {
            throw new IllegalArgumentException(
                    "shape: " + Arrays.toString(shape) + " has more than 2^63-1 elements, which a long cannot count");
        }
        long needed;
        try {
            long lastIndex = 0;
            for (int i = 0; i < 4; i++) {
                lastIndex = Math.addExact(lastIndex, Math.multiplyExact(shape[i] - 1, strides[i]));
            }
            needed = Math.multiplyExact(Math.addExact(lastIndex, 1), (long) dtype.byteSize());
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException("strides: " + Arrays.toString(strides) + " with shape "
                    + Arrays.toString(shape) + " address " + dtype + " elements past 2^63-1 bytes");
        }
        if (needed > memory.byteSize()) {
            throw new IllegalArgumentException("memory: " + memory.byteSize() + " bytes do not cover shape "
                    + Arrays.toString(shape) + " with strides " + Arrays.toString(strides) + " of " + dtype
                    + " (" + needed + " bytes needed)");
        }
        return new Tensor(memory, dtype, dims, strides.clone());
    }

    /**
     * A zeroed, BHSD-contiguous tensor on the Java heap.
     *
     * @param dtype the element type
     * @param batch batch entries {@code B}, at least 1
     * @param heads heads {@code H}, at least 1
     * @param seq positions {@code S} per sequence, at least 1
     * @param headDim elements {@code D} per row, at least 1
     * @return the new tensor
     */
    public static Tensor allocate(DType dtype, int batch, int heads, int seq, int headDim) {
        Objects.requireNonNull(dtype, "dtype");
        int[] shape = checkShape(batch, heads, seq, headDim);
        long count = countOrMinusOne(shape);
        if (count < 0 || count > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("shape: " + Arrays.toString(shape) + " has " + countString(count)
                    + ", more than a Java array holds; use Tensor.of(MemorySegment, ...) off-heap");
        }
        MemorySegment memory = dtype == DType.F32
                ? MemorySegment.ofArray(new float[(int) count])
                : MemorySegment.ofArray(new short[(int) count]);
        return new Tensor(memory, dtype, shape, contiguousStrides(shape));
    }

    private static int[] checkShape(int batch, int heads, int seq, int headDim) {
        int[] shape = {batch, heads, seq, headDim};
        for (int extent : shape) {
            if (extent < 1) {
                throw new IllegalArgumentException(
                        "shape: every extent of [batch, heads, seq, headDim] must be >= 1, got "
                                + Arrays.toString(shape));
            }
        }
        return shape;
    }

    /** The element count of {@code shape}, or -1 when it passes {@code Long.MAX_VALUE}. */
    private static long countOrMinusOne(int[] shape) {
        try {
            return Math.multiplyExact(
                    Math.multiplyExact((long) shape[0], shape[1]), Math.multiplyExact((long) shape[2], shape[3]));
        } catch (ArithmeticException e) {
            return -1;
        }
    }

    private static String countString(long count) {
        return count < 0 ? "more than 2^63-1 elements" : count + " elements";
    }

    /** Strides of a BHSD-contiguous shape whose element count was checked to fit. */
    private static long[] contiguousStrides(int[] shape) {
        return new long[] {(long) shape[1] * shape[2] * shape[3], (long) shape[2] * shape[3], shape[3], 1};
    }

    /** {@return the batch entries {@code B}} */
    public int batch() {
        return batch;
    }

    /** {@return the heads {@code H}} */
    public int heads() {
        return heads;
    }

    /** {@return the positions {@code S} of each sequence} */
    public int seqLen() {
        return seqLen;
    }

    /** {@return the elements {@code D} of each row} */
    public int headDim() {
        return headDim;
    }

    /** {@return the element type} */
    public DType dtype() {
        return dtype;
    }

    /**
     * A zero-copy view {@code [1, heads, length, headDim]} of rows {@code start .. start + length - 1}
     * of batch entry {@code b}: one sequence of a batch, or one sequence of a packed (variable-length)
     * tensor.
     *
     * @param b the batch entry
     * @param start the first row
     * @param length rows in the view, at least 1
     * @return the view
     */
    public Tensor sequence(int b, int start, int length) {
        Objects.checkIndex(b, batch);
        if (length < 1) {
            throw new IllegalArgumentException("length: must be >= 1, got " + length);
        }
        Objects.checkFromIndexSize(start, length, seqLen);
        long first = (b * strideB + start * strideS) * dtype.byteSize();
        return new Tensor(memory.asSlice(first), dtype, new int[] {1, heads, length, headDim}, new long[] {
            strideB, strideH, strideS, strideD
        });
    }

    /** {@return the shape {@code [batch, heads, seq, headDim]}} */
    public long[] shape() {
        return new long[] {batch, heads, seqLen, headDim};
    }

    /**
     * Strides in elements, in shape order.
     *
     * @return the strides in elements, in shape order
     */
    public long[] strides() {
        return new long[] {strideB, strideH, strideS, strideD};
    }

    /** {@return the memory this tensor views} */
    public MemorySegment memory() {
        return memory;
    }

    /**
     * Number of logical elements.
     *
     * @return the number of logical elements
     */
    public long elementCount() {
        return (long) batch * heads * seqLen * headDim;
    }

    /** {@return true when the layout is BHSD with no gaps} */
    public boolean isContiguous() {
        return strideD == 1
                && strideS == headDim
                && strideH == (long) seqLen * headDim
                && strideB == (long) heads * seqLen * headDim;
    }

    /**
     * One element, as float.
     *
     * @param b the batch entry
     * @param h the head
     * @param s the position in the sequence
     * @param d the element of the row
     * @return element {@code (b, h, s, d)}
     */
    public float get(int b, int h, int s, int d) {
        return load(offsetOf(b, h, s, d));
    }

    /**
     * Sets one element, rounded to the dtype.
     *
     * @param b the batch entry
     * @param h the head
     * @param s the position in the sequence
     * @param d the element of the row
     * @param value its new value
     */
    public void set(int b, int h, int s, int d, float value) {
        store(offsetOf(b, h, s, d), value);
    }

    /**
     * Copies the {@code headDim} elements of row {@code (b, h, s)} into {@code dst}, as float.
     *
     * @param b the batch entry
     * @param h the head
     * @param s the position in the sequence
     * @param dst receives the floats
     * @param dstOffset where the first element goes in {@code dst}
     */
    public void readRow(int b, int h, int s, float[] dst, int dstOffset) {
        Objects.checkFromIndexSize(dstOffset, headDim, dst.length);
        long offset = offsetOf(b, h, s, 0);
        if (dtype == DType.F32 && strideD == 1) {
            MemorySegment.copy(memory, FLOAT, offset, dst, dstOffset, headDim);
            return;
        }
        long step = strideD * dtype.byteSize();
        for (int d = 0; d < headDim; d++, offset += step) {
            dst[dstOffset + d] = load(offset);
        }
    }

    /**
     * Copies rows {@code s0 .. s0 + count - 1} of head {@code (b, h)} into {@code dst} as float, row
     * {@code r} at {@code dst[dstOffset + r * dstStride]}. One bulk copy when the rows are contiguous
     * F32 and {@code dstStride == headDim}.
     *
     * @param b the batch entry
     * @param h the head
     * @param s0 the first position
     * @param count rows to copy
     * @param dst receives the floats
     * @param dstOffset where the first element goes in {@code dst}
     * @param dstStride floats from one row to the next in {@code dst}
     */
    public void readRows(int b, int h, int s0, int count, float[] dst, int dstOffset, int dstStride) {
        Objects.checkFromIndexSize(s0, count, seqLen);
        if (count == 0) {
            return;
        }
        if (dstStride < headDim) {
            throw new IllegalArgumentException("dstStride: " + dstStride + " must be >= headDim " + headDim);
        }
        Objects.checkFromIndexSize(dstOffset, (long) (count - 1) * dstStride + headDim, dst.length);
        if (dtype == DType.F32 && strideD == 1 && strideS == headDim && dstStride == headDim) {
            MemorySegment.copy(memory, FLOAT, offsetOf(b, h, s0, 0), dst, dstOffset, count * headDim);
            return;
        }
        for (int r = 0; r < count; r++) {
            readRow(b, h, s0 + r, dst, dstOffset + r * dstStride);
        }
    }

    /**
     * Writes {@code headDim} floats from {@code src} into row {@code (b, h, s)}, rounding to the dtype.
     *
     * @param b the batch entry
     * @param h the head
     * @param s the position in the sequence
     * @param src the floats to write
     * @param srcOffset where the first element is in {@code src}
     */
    public void writeRow(int b, int h, int s, float[] src, int srcOffset) {
        Objects.checkFromIndexSize(srcOffset, headDim, src.length);
        long offset = offsetOf(b, h, s, 0);
        if (dtype == DType.F32 && strideD == 1) {
            MemorySegment.copy(src, srcOffset, memory, FLOAT, offset, headDim);
            return;
        }
        long step = strideD * dtype.byteSize();
        for (int d = 0; d < headDim; d++, offset += step) {
            store(offset, src[srcOffset + d]);
        }
    }

    /**
     * Sets every element to {@code value} (rounded to the dtype).
     *
     * @param value the value of every element
     */
    public void fill(float value) {
        float[] row = new float[headDim];
        Arrays.fill(row, value);
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                for (int s = 0; s < seqLen; s++) {
                    writeRow(b, h, s, row, 0);
                }
            }
        }
    }

    /** {@return all elements in BHSD order, as float (a copy)} */
    public float[] toFloatArray() {
        long count = elementCount();
        if (count > Integer.MAX_VALUE - 8) {
            throw new IllegalStateException("tensor has " + count + " elements, more than a float[] holds");
        }
        float[] out = new float[(int) count];
        int pos = 0;
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                for (int s = 0; s < seqLen; s++, pos += headDim) {
                    readRow(b, h, s, out, pos);
                }
            }
        }
        return out;
    }

    /**
     * {@code [b, h, s, d]}, for messages.
     *
     * @return the shape as {@code [b, h, s, d]}
     */
    public String shapeString() {
        return "[" + batch + ", " + heads + ", " + seqLen + ", " + headDim + "]";
    }

    @Override
    public String toString() {
        return "Tensor[" + dtype + " " + shapeString() + " strides " + Arrays.toString(strides())
                + (memory.isNative() ? " off-heap" : " heap") + "]";
    }

    private long offsetOf(int b, int h, int s, int d) {
        Objects.checkIndex(b, batch);
        Objects.checkIndex(h, heads);
        Objects.checkIndex(s, seqLen);
        Objects.checkIndex(d, headDim);
        return (b * strideB + h * strideH + s * strideS + d * strideD) * dtype.byteSize();
    }

    private float load(long byteOffset) {
        return dtype == DType.F32 ? memory.get(FLOAT, byteOffset) : dtype.decode16(memory.get(SHORT, byteOffset));
    }

    private void store(long byteOffset, float value) {
        if (dtype == DType.F32) {
            memory.set(FLOAT, byteOffset, value);
        } else {
            memory.set(SHORT, byteOffset, dtype.encode16(value));
        }
    }
}
