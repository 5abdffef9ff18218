package dev.aule.cpu;

import dev.aule.DType;
import dev.aule.Tensor;

import java.lang.foreign.MemorySegment;

/**
 * A tensor's rows read in place from the memory behind it, so a short (decode) tile's kernels
 * stream keys and values straight from the caller's memory instead of copying each block into
 * scratch first. For tensors whose rows are contiguous, aligned to their element and whole vectors
 * long ({@code headDim} a multiple of the lanes, so no padding is needed); other tensors are copied.
 *
 * <p>F32 tensors over a {@code float[]} are read through that array ({@link #array()} non-null,
 * rows by {@link #index}), F16 and BF16 tensors over a {@code short[]} (the heap caches) through that
 * one ({@link #halves()} non-null); any other memory (off-heap caches, mapped files, other heap
 * arrays) through the segment, rows by {@link #byteOffset}. The 16-bit rows are widened in registers
 * by the kernels. The kernels have an overload for each.
 *
 * @param memory    the tensor's memory
 * @param dtype     the tensor's element type
 * @param array     the {@code float[]} behind an F32 tensor's {@code memory}, or null
 * @param halves    the {@code short[]} behind an F16 or BF16 tensor's {@code memory}, or null
 * @param arrayBase index in {@code array} or {@code halves} of the segment's first element (0 without either)
 * @param strideB   batch stride in elements
 * @param strideH   head stride in elements
 * @param strideS   row stride in elements
 */
record InPlaceRows(
        MemorySegment memory,
        DType dtype,
        float[] array,
        short[] halves,
        long arrayBase,
        long strideB,
        long strideH,
        long strideS) {

    /** The in-place view of {@code t}, or null when its alignment or layout does not allow one. */
    static InPlaceRows of(Tensor t, int lanes) {
        long[] strides = t.strides();
        MemorySegment memory = t.memory();
        int size = t.dtype().byteSize();
        if (strides[3] != 1 || t.headDim() % lanes != 0 || memory.address() % size != 0) {
            return null;
        }
        // A heap segment's address is its byte offset into the array.
        Object base = memory.heapBase().orElse(null);
        long at = memory.address() / size;
        if (t.dtype() == DType.F32 && base instanceof float[] array) {
            return new InPlaceRows(memory, t.dtype(), array, null, at, strides[0], strides[1], strides[2]);
        }
        if (t.dtype() != DType.F32 && base instanceof short[] halves) {
            return new InPlaceRows(memory, t.dtype(), null, halves, at, strides[0], strides[1], strides[2]);
        }
        return new InPlaceRows(memory, t.dtype(), null, null, 0, strides[0], strides[1], strides[2]);
    }

    /** Whether the rows are F16 or BF16 patterns, which the kernels widen. */
    boolean half() {
        return dtype != DType.F32;
    }

    /** Whether the rows are bfloat16 patterns. */
    boolean bf16() {
        return dtype == DType.BF16;
    }

    /** Index in {@link #array()} or {@link #halves()} of row {@code s} of head {@code h} of batch {@code b}. */
    int index(int b, int h, int s) {
        return Math.toIntExact(arrayBase + elementOffset(b, h, s));
    }

    /** Byte offset in {@link #memory()} of row {@code s} of head {@code h} of batch {@code b}. */
    long byteOffset(int b, int h, int s) {
        return elementOffset(b, h, s) * dtype.byteSize();
    }

    int rowStride() {
        return Math.toIntExact(strideS);
    }

    long rowBytes() {
        return strideS * dtype.byteSize();
    }

    private long elementOffset(int b, int h, int s) {
        return b * strideB + h * strideH + s * strideS;
    }
}
