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
     * binary32's exponent and fraction and the exponent rebiased by an integer add of 120 (E4M3) or 112 (E5M2), which
     * is the code's value for every normal code. A subnormal code (exponent field 0, fraction {@code f}) comes out as
     * the smallest normal plus {@code f} units of a quarter (E5M2) or an eighth (E4M3) of it, {@code 2^-7 + f 2^-10}
     * for E4M3, where its value is {@code f 2^-9}: twice that minus {@code 2^-6}, one fused multiply-add, exact (the
     * result has at most 3 significant bits), zero included. The NaN and infinity patterns (E4M3 magnitude 0x7F,
     * E5M2 0x7C and up) get every exponent bit set, their fraction kept, as the scalar decoder's NaN and
     * infinities; then the sign.
     *
     * <p>No operand is ever a denormal float: on Intel cores every multiply with a denormal operand takes a microcode
     * assist (multiplying the shifted bits of a subnormal code, a denormal, by {@code 2^120} ran a decode step over
     * subnormal codes 11 times slower than over normal ones), and quantized caches hold many subnormal codes.
     */
    static FloatVector widen(QuantizedKv.Format format, ByteVector bytes, int part) {
        if (format == QuantizedKv.Format.INT8) {
            return (FloatVector) bytes.convertShape(VectorOperators.B2F, F, part);
        }
        IntVector code = (IntVector) bytes.convertShape(VectorOperators.B2I, I, part);
        boolean e4m3 = format == QuantizedKv.Format.FP8_E4M3;
        int shift = e4m3 ? 20 : 21;
        int fractionBits = e4m3 ? 3 : 2;
        IntVector magnitude = code.lanewise(VectorOperators.LSHL, shift).and(0x7F << shift);
        FloatVector normal = magnitude.add((e4m3 ? 120 : 112) << 23).reinterpretAsFloats();
        float smallest = e4m3 ? 0x1p-7f : 0x1p-15f;
        FloatVector value = normal.lanewise(
                VectorOperators.FMA,
                2f,
                -2 * smallest,
                magnitude
                        .compare(VectorOperators.LT, 1 << (shift + fractionBits))
                        .cast(F));
        // The sign-extended code's bit 31 is its sign.
        return value.reinterpretAsInts()
                .lanewise(
                        VectorOperators.OR,
                        0x7F800000,
                        magnitude.compare(VectorOperators.GE, (e4m3 ? 0x7F : 0x7C) << shift))
                .or(code.and(0x80000000))
                .reinterpretAsFloats();
    }
}
