package dev.aule.cpu;

import dev.aule.DType;
import dev.aule.Tensor;

/**
 * A tensor's rows read in place from the {@code float[]} behind it, so a short (decode) tile's
 * kernels stream keys and values straight from the caller's memory instead of copying each block
 * into scratch first. Only for F32 heap tensors whose rows are contiguous and whole vectors long
 * ({@code headDim} a multiple of the lanes, so no padding is needed); other tensors are copied.
 *
 * @param array   the backing array
 * @param base    element index of element (0, 0, 0, 0)
 * @param strideB batch stride in elements
 * @param strideH head stride in elements
 * @param strideS row stride in elements
 */
record HeapRows(float[] array, long base, long strideB, long strideH, long strideS) {

    /** The in-place view of {@code t}, or null when its memory or layout does not allow one. */
    static HeapRows of(Tensor t, int lanes) {
        long[] strides = t.strides();
        if (t.dtype() != DType.F32 || strides[3] != 1 || t.headDim() % lanes != 0
                || t.memory().address() % Float.BYTES != 0) {
            return null;
        }
        if (!(t.memory().heapBase().orElse(null) instanceof float[] array)) {
            return null;
        }
        return new HeapRows(array, t.memory().address() / Float.BYTES, strides[0], strides[1], strides[2]);
    }

    /** Index in {@link #array()} of row {@code s} of head {@code h} of batch {@code b}. */
    int offset(int b, int h, int s) {
        return Math.toIntExact(base + b * strideB + h * strideH + s * strideS);
    }

    int rowStride() {
        return Math.toIntExact(strideS);
    }
}
