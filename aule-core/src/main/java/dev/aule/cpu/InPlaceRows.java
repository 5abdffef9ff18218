package dev.aule.cpu;

import dev.aule.DType;
import dev.aule.Tensor;

import java.lang.foreign.MemorySegment;

/**
 * A tensor's rows read in place from the memory behind it, so a short (decode) tile's kernels
 * stream keys and values straight from the caller's memory instead of copying each block into
 * scratch first. Only for F32 tensors whose rows are contiguous, 4-byte aligned and whole vectors
 * long ({@code headDim} a multiple of the lanes, so no padding is needed); other tensors are copied.
 *
 * <p>Heap tensors over a {@code float[]} are read through that array ({@link #array()} non-null,
 * rows by {@link #index}); any other memory (off-heap caches, mapped files, other heap arrays)
 * through the segment, rows by {@link #byteOffset}. The kernels have an overload for each.
 *
 * @param memory    the tensor's memory
 * @param array     the {@code float[]} behind {@code memory}, or null when it is not one
 * @param arrayBase index in {@code array} of the segment's first float (0 without array)
 * @param strideB   batch stride in elements
 * @param strideH   head stride in elements
 * @param strideS   row stride in elements
 */
record InPlaceRows(MemorySegment memory, float[] array, long arrayBase, long strideB, long strideH, long strideS) {

    /** The in-place view of {@code t}, or null when its dtype, alignment or layout does not allow one. */
    static InPlaceRows of(Tensor t, int lanes) {
        long[] strides = t.strides();
        MemorySegment memory = t.memory();
        if (t.dtype() != DType.F32
                || strides[3] != 1
                || t.headDim() % lanes != 0
                || memory.address() % Float.BYTES != 0) {
            return null;
        }
        if (memory.heapBase().orElse(null) instanceof float[] array) {
            // A heap segment's address is its byte offset into the array.
            return new InPlaceRows(memory, array, memory.address() / Float.BYTES, strides[0], strides[1], strides[2]);
        }
        return new InPlaceRows(memory, null, 0, strides[0], strides[1], strides[2]);
    }

    /** Index in {@link #array()} of row {@code s} of head {@code h} of batch {@code b}. */
    int index(int b, int h, int s) {
        return Math.toIntExact(arrayBase + elementOffset(b, h, s));
    }

    /** Byte offset in {@link #memory()} of row {@code s} of head {@code h} of batch {@code b}. */
    long byteOffset(int b, int h, int s) {
        return elementOffset(b, h, s) * Float.BYTES;
    }

    int rowStride() {
        return Math.toIntExact(strideS);
    }

    long rowBytes() {
        return strideS * Float.BYTES;
    }

    private long elementOffset(int b, int h, int s) {
        return b * strideB + h * strideH + s * strideS;
    }
}
