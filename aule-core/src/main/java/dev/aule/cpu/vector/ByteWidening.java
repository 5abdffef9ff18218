package dev.aule.cpu.vector;

import dev.aule.spi.QuantizedKv;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * INT8 and FP8 codes widened to float a vector at a time and multiplied by their scale: how quantized keys and
 * values reach the tiles. Each load of {@link #B} bytes (at least 64 bits, the narrowest byte vector) widens to
 * {@link #PARTS} float vectors.
 */
public final class ByteWidening {
    private static final VectorSpecies<Float> F = SimdWidth.F;
    private static final VectorSpecies<Integer> I = SimdWidth.I;
    private static final int L = SimdWidth.L;
    static final VectorSpecies<Byte> B =
            VectorSpecies.of(byte.class, VectorShape.forBitSize(Math.max(64, SimdWidth.F.vectorBitSize() / 4)));
    static final int PARTS = B.length() / L;

    private ByteWidening() {}

    /**
     * {@code dst[dstOff + r * dstStride + x] = decode(codes[codeOff + r * dim + x]) * scale} for {@code r < rows},
     * {@code x < dim}: bit for bit what {@link QuantizedKv.Format#decode} times {@code scale} gives (any NaN code
     * stays a NaN).
     *
     * @param format the codes' format
     * @param codes the codes
     * @param codeOff the first row's first code
     * @param dim codes per row, rows adjacent
     * @param rows rows to widen
     * @param scale what each decoded code is multiplied by
     * @param dst receives the floats
     * @param dstOff where the first row goes
     * @param dstStride floats from one row's start to the next's
     */
    public static void dequantize(
            QuantizedKv.Format format,
            byte[] codes,
            int codeOff,
            int dim,
            int rows,
            float scale,
            float[] dst,
            int dstOff,
            int dstStride) {
        int step = B.length();
        int whole = dim - dim % step;
        for (int r = 0; r < rows; r++) {
            int src = codeOff + r * dim;
            int out = dstOff + r * dstStride;
            int x = 0;
            for (; x < whole; x += step) {
                ByteVector bytes = ByteVector.fromArray(B, codes, src + x);
                for (int part = 0; part < PARTS; part++) {
                    widen(format, bytes, part).mul(scale).intoArray(dst, out + x + part * L);
                }
            }
            for (; x < dim; x++) {
                dst[out + x] = format.decode(codes[src + x]) * scale;
            }
        }
    }

    /**
     * Part {@code part} of the bytes as floats. FP8: the sign-extended code's 7 magnitude bits are shifted into
     * binary32's exponent and fraction; a normal code's exponent is rebiased by an integer add of 120 (E4M3) or 112
     * (E5M2) to the exponent field, and a subnormal code (exponent field 0) is its fraction converted to float times
     * {@code 2^-9} (E4M3) or {@code 2^-16} (E5M2), its sign put back; both exact. The NaN and infinity patterns (E4M3
     * magnitude 0x7F, E5M2 0x7C and up) get every exponent bit set, their fraction kept, as the scalar decoder's
     * NaN and infinities.
     *
     * <p>Not a float multiply of the shifted bits by {@code 2^120}, which rebiases subnormals too and is two
     * operations fewer: the shifted bits of a subnormal code are a denormal float, and on Intel cores every
     * multiply with a denormal operand takes a microcode assist (a decode step over subnormal codes ran 11 times
     * slower than over normal ones), and quantized caches hold many subnormal codes.
     */
    static FloatVector widen(QuantizedKv.Format format, ByteVector bytes, int part) {
        if (format == QuantizedKv.Format.INT8) {
            return (FloatVector) bytes.convertShape(VectorOperators.B2F, F, part);
        }
        IntVector code = (IntVector) bytes.convertShape(VectorOperators.B2I, I, part);
        boolean e4m3 = format == QuantizedKv.Format.FP8_E4M3;
        int shift = e4m3 ? 20 : 21;
        int fractionBits = e4m3 ? 3 : 2;
        // The code is sign-extended, so shifting it puts copies of its sign bit at bit 31 and above the magnitude;
        // one mask keeps the sign and the 7 magnitude bits: sign | magnitude << shift, in two operations.
        IntVector bits = code.lanewise(VectorOperators.LSHL, shift).and(0x80000000 | (0x7F << shift));
        IntVector magnitude = bits.and(0x7F << shift);
        IntVector normal = bits.add((e4m3 ? 120 : 112) << 23);
        IntVector subnormal = ((FloatVector)
                        magnitude.lanewise(VectorOperators.LSHR, shift).convert(VectorOperators.I2F, 0))
                .mul(e4m3 ? 0x1p-9f : 0x1p-16f)
                .reinterpretAsInts()
                .or(bits.and(0x80000000));
        // NaN and infinity codes are those whose magnitude bits reach the threshold.
        return normal.blend(subnormal, magnitude.compare(VectorOperators.LT, 1 << (shift + fractionBits)))
                .lanewise(
                        VectorOperators.OR,
                        0x7F800000,
                        magnitude.compare(VectorOperators.GE, (e4m3 ? 0x7F : 0x7C) << shift))
                .reinterpretAsFloats();
    }
}
