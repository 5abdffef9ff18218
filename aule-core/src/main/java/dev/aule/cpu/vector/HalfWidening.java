package dev.aule.cpu.vector;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/** F16 and BF16 rows widened to float a vector at a time: how half-precision keys and values reach the tiles. */
public final class HalfWidening {
    private static final VectorSpecies<Float> F = SimdWidth.F;
    private static final VectorSpecies<Integer> I = SimdWidth.I;
    private static final VectorSpecies<Short> H = SimdWidth.H;
    private static final int L = SimdWidth.L;
    private static final ByteOrder NATIVE = ByteOrder.nativeOrder();
    private static final ValueLayout.OfShort HALF = ValueLayout.JAVA_SHORT_UNALIGNED;

    private HalfWidening() {}

    /**
     * One vector of 16-bit patterns as floats, lane for lane: F16 when {@code bf16} is false, else bfloat16; bit for
     * bit as {@link Float#float16ToFloat} and a 16-bit shift give (any NaN stays a NaN). The row widening and the
     * in-place half-precision kernels ({@link HalfProducts}) both widen through here.
     */
    static FloatVector widen(ShortVector halves, boolean bf16) {
        // S2I sign-extends each 16-bit pattern into its int lane, so bit 31 is the pattern's sign. bfloat16 is
        // the upper half of a binary32. binary16: the 15 magnitude bits shifted into binary32's exponent and
        // fraction, times 2^112 to rebias the exponent (exact, and right for subnormals and zero too); an
        // all-ones exponent (infinity, NaN) came out as 2^16 times its fraction, so setting every exponent bit
        // restores it, the fraction (NaN payload) kept; then the sign, taken from the extension.
        IntVector h = (IntVector) halves.convertShape(VectorOperators.S2I, I, 0);
        if (bf16) {
            return h.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
        }
        IntVector magnitude = h.and(0x7FFF);
        return magnitude
                .lanewise(VectorOperators.LSHL, 13)
                .reinterpretAsFloats()
                .mul(0x1p112f)
                .reinterpretAsInts()
                .lanewise(VectorOperators.OR, 0x7F800000, magnitude.compare(VectorOperators.GE, 0x7C00))
                .or(h.and(0x80000000))
                .reinterpretAsFloats();
    }

    /**
     * {@code dst[dstOff + i]} = the 16-bit value at byte {@code srcOff + 2 i} of {@code src} as float, for
     * {@code i < count}: F16 when {@code bf16} is false, else bfloat16; bit for bit as {@link Float#float16ToFloat}
     * and a 16-bit shift give (any NaN stays a NaN).
     */
    public static void widen(MemorySegment src, long srcOff, boolean bf16, float[] dst, int dstOff, int count) {
        long at = srcOff;
        int i = 0;
        for (; i + L <= count; i += L, at += 2L * L) {
            widen(ShortVector.fromMemorySegment(H, src, at, NATIVE), bf16).intoArray(dst, dstOff + i);
        }
        for (; i < count; i++, at += 2) {
            short bits = src.get(HALF, at); // the tail one by one, as the scalar path converts
            dst[dstOff + i] = bf16 ? Float.intBitsToFloat(bits << 16) : Float.float16ToFloat(bits);
        }
    }
}
