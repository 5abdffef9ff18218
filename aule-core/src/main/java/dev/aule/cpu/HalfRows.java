package dev.aule.cpu;

import dev.aule.DType;
import dev.aule.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * A half-precision (F16 or BF16) tensor's rows, each stored as {@code headDim} adjacent 16-bit values,
 * widened to float a whole row at a time by the tile math's vector conversion rather than element by
 * element through {@link Tensor#readRows}: how half-precision caches reach the kernel's tiles.
 *
 * @param memory  the tensor's memory
 * @param bf16    bfloat16 rather than IEEE binary16
 * @param strideB batch stride in elements
 * @param strideH head stride in elements
 * @param strideS row stride in elements
 * @param seqLen  rows per head
 * @param headDim elements per row
 */
record HalfRows(MemorySegment memory, boolean bf16, long strideB, long strideH, long strideS, int seqLen, int headDim) {

    /** The rows of {@code t}, or null when it is F32 or its rows are not contiguous. */
    static HalfRows of(Tensor t) {
        long[] strides = t.strides();
        if (t.dtype() == DType.F32 || strides[3] != 1) {
            return null;
        }
        return new HalfRows(
                t.memory(), t.dtype() == DType.BF16, strides[0], strides[1], strides[2], t.seqLen(), t.headDim());
    }

    /** One stored 16-bit pattern as float: bfloat16 is the upper half of a binary32, F16 as the JDK converts it. */
    static float widen(short bits, boolean bf16) {
        return bf16 ? Float.intBitsToFloat(bits << 16) : Float.float16ToFloat(bits);
    }

    /** {@link Tensor#readRows} of these rows: row {@code s0 + r} of head {@code (b, h)} to {@code dst[dstOffset + r * dstStride]}. */
    void read(TileMath math, int b, int h, int s0, int count, float[] dst, int dstOffset, int dstStride) {
        Objects.checkFromIndexSize(s0, count, seqLen);
        long row = (b * strideB + h * strideH + s0 * strideS) * Short.BYTES;
        for (int r = 0; r < count; r++, row += strideS * Short.BYTES) {
            math.widen(memory, row, bf16, dst, dstOffset + r * dstStride, headDim);
        }
    }
}
