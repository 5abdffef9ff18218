package dev.aule.cpu.vector;

import dev.aule.spi.QuantizedKv;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
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
    /** What {@link #abnormalKeys} returns for a run where over a quarter of the rows are not all normal. */
    static final long MOSTLY_ABNORMAL = -1L;

    /** The widest byte vector: how {@link #abnormalKeys} scans rows of codes. */
    private static final VectorSpecies<Byte> SCAN = VectorSpecies.of(byte.class, F.vectorShape());

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
        IntVector magnitude =
                code.lanewise(VectorOperators.LSHL, shiftCount(shift)).and(0x7F << shift);
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

    /**
     * The keys among {@code keys} rows of {@code dim} FP8 codes from {@code off} (at most 64) that hold a code which is
     * not a normal number (zero, subnormal, NaN or infinity): bit {@code j} set for row {@code j}. {@link
     * #widenNormal} widens exactly the rows whose bit is clear. A byte is normal when its magnitude's exponent field
     * is neither all zeros nor all ones: adding 1 (E4M3) or 4 (E5M2) and keeping the magnitude (E4M3) or exponent
     * (E5M2) bits maps exactly the other bytes below 9 (E4M3: magnitudes 0 to 7, and the NaN 0x7F, which wraps to 0)
     * or 8 (E5M2: exponents 0 and 31), so one minimum per row decides. About three operations per widest vector of
     * bytes, against the six the shorter widening saves per float vector. Once more than a quarter of the rows are
     * found so, the scan stops and returns {@link #MOSTLY_ABNORMAL}: such runs take the full widening for every row.
     */
    static long abnormalKeys(QuantizedKv.Format format, byte[] codes, int off, int dim, int keys) {
        NormalTest test = NormalTest.of(format);
        byte add = test.add();
        byte keep = test.keep();
        byte below = test.below();
        int step = SCAN.length();
        ByteVector high = ByteVector.broadcast(SCAN, (byte) 0x7F);
        // First the run as a whole, two vectors at a time into two minima: most runs are all normal, and this pass
        // costs less than the row by row one below, which finds the rows only when the run needs it.
        int n = keys * dim;
        ByteVector least0 = high;
        ByteVector least1 = high;
        int i = 0;
        for (; i + 2 * step <= n; i += 2 * step) {
            least0 = least0.min(
                    ByteVector.fromArray(SCAN, codes, off + i).add(add).and(keep));
            least1 = least1.min(
                    ByteVector.fromArray(SCAN, codes, off + i + step).add(add).and(keep));
        }
        boolean clean = !least0.min(least1).compare(VectorOperators.LT, below).anyTrue();
        for (; clean && i < n; i++) {
            clean = (byte) ((codes[off + i] + add) & keep) >= below;
        }
        if (clean) {
            return 0;
        }
        int whole = dim - dim % step;
        VectorMask<Byte> tail = SCAN.indexInRange(whole, dim);
        long abnormal = 0;
        for (int j = 0, row = off; j < keys; j++, row += dim) {
            ByteVector least = high;
            for (int x = 0; x < whole; x += step) {
                least = least.min(
                        ByteVector.fromArray(SCAN, codes, row + x).add(add).and(keep));
            }
            if (whole < dim) { // lanes past the row keep the high value
                ByteVector last = ByteVector.fromArray(SCAN, codes, row + whole, tail);
                least = least.lanewise(VectorOperators.MIN, last.add(add).and(keep), tail);
            }
            if (least.compare(VectorOperators.LT, below).anyTrue()) {
                abnormal |= 1L << j;
                if (4 * Long.bitCount(abnormal) > keys) {
                    return MOSTLY_ABNORMAL;
                }
            }
        }
        return abnormal;
    }

    /**
     * The scans' test of a byte: {@code (code + add) & keep} is below {@code below} exactly for the codes that are not
     * normal numbers (see {@link #abnormalKeys}).
     */
    private record NormalTest(byte add, byte keep, byte below) {
        private static final NormalTest E4M3 = new NormalTest((byte) 1, (byte) 0x7F, (byte) 9);
        private static final NormalTest E5M2 = new NormalTest((byte) 4, (byte) 0x7C, (byte) 8);

        static NormalTest of(QuantizedKv.Format format) {
            return format == QuantizedKv.Format.FP8_E4M3 ? E4M3 : E5M2;
        }
    }

    /**
     * {@link #abnormalKeys} of {@code keys} keys stored element by element: element {@code x} of key {@code j} is
     * {@code codes[off + x * keyStride + j]} ({@code keys <= keyStride}, at most 64). Keys run along the lanes, so
     * one minimum per lane over the elements, the same test as {@link #abnormalKeys}'s, decides each key; no early
     * stop (the key score kernel chooses its widening per vector of keys, not per run).
     */
    static long abnormalColumns(QuantizedKv.Format format, byte[] codes, int off, int keyStride, int dim, int keys) {
        NormalTest test = NormalTest.of(format);
        byte add = test.add();
        byte keep = test.keep();
        byte below = test.below();
        int step = B.length();
        ByteVector high = ByteVector.broadcast(B, (byte) 0x7F);
        // Loads of a vector of keys from each element's first: not past the array's end (the keys there are
        // scanned one by one).
        long room = (long) codes.length - off - (long) (dim - 1) * keyStride;
        int vectorKeys = (int) Math.max(0, Math.min(keys, room - step + 1));
        long abnormal = 0;
        int g = 0;
        for (; g < vectorKeys; g += step) {
            ByteVector least = high;
            for (int x = 0, at = off + g; x < dim; x++, at += keyStride) {
                least = least.min(ByteVector.fromArray(B, codes, at).add(add).and(keep));
            }
            abnormal |= least.compare(VectorOperators.LT, below).toLong() << g;
        }
        for (int j = g; j < keys; j++) {
            for (int x = 0; x < dim; x++) {
                if ((byte) ((codes[off + x * keyStride + j] + add) & keep) < below) {
                    abnormal |= 1L << j;
                    break;
                }
            }
        }
        return keys == 64 ? abnormal : abnormal & ((1L << keys) - 1);
    }

    /**
     * The first float vector of the bytes, for INT8 codes or for FP8 codes in rows {@link #abnormalKeys} leaves clear:
     * INT8 codes as floats, in two operations; FP8 codes as their values times {@code 2^-120} (E4M3) or {@code 2^-112}
     * (E5M2), {@code 1 / }{@link #normalBias}, in three operations instead of {@link #widen}'s ten. FP8: the
     * sign-extended code shifted so that its magnitude lands in binary32's exponent and fraction and its sign in bit
     * 31, and the sign's copies between them cleared: a normal code's exponent field, 1 to 15 (E4M3) or 1 to 30
     * (E5M2), becomes a binary32 exponent field unrebiased, so the float is a normal number whose bits are the
     * code's own and whose value falls short of the code's by exactly the power of two. The kernels multiply the
     * other factor of each product by {@link #normalBias} instead, which leaves every product, and so every sum, as
     * the code's value would give it (see {@link QuantizedProducts}).
     *
     * @param int8 whether the codes are INT8 (else FP8 with the shift and mask below)
     * @param shift {@link #normalShift}: 20 (E4M3) or 21 (E5M2)
     * @param constants {@link #normalConstants}: where the format's mask starts in the table
     */
    static FloatVector widenNormal(ByteVector bytes, boolean int8, int shift, int constants) {
        if (int8) {
            return (FloatVector) bytes.convertShape(VectorOperators.B2F, F, 0);
        }
        IntVector code = (IntVector) bytes.convertShape(VectorOperators.B2I, I, 0);
        return code.lanewise(VectorOperators.LSHL, shiftCount(shift))
                .and(IntVector.fromArray(I, NORMAL_CONSTANTS, constants))
                .reinterpretAsFloats();
    }

    /*
     * The mask of widenNormal, one vector per FP8 format (E4M3's, then E5M2's), read from this table where it is used
     * rather than broadcast from a scalar. The score loop holds eight accumulators and the query vectors of C2's
     * unrolled steps, so broadcast constants did not stay in registers: C2 spilled the scalar and broadcast it again
     * from the stack for every widening. The table's load is hoisted out of the loop into a register instead: the FP8
     * score loop (then with a second table vector, the rebiasing add) ran at 19.4 to 20.3 ns per key against 20.5 to
     * 23.1 (Zen 4, one thread, D = 128). Taking the shift count from the table as well ran slower.
     *
     * The rebiasing add itself left the loops once the kernels took the power of two in the other factor: the FP8
     * score kernel then ran at 13.3 ns per key against 15.0 with the add, the value kernel at 13.8 against 15.2 (Zen 4,
     * one thread, D = 128, four query rows, blocks of 32 keys from L2).
     */
    private static final int[] NORMAL_CONSTANTS = normalConstantTable();

    private static int[] normalConstantTable() {
        int[] table = new int[2 * L];
        for (int lane = 0; lane < L; lane++) {
            table[lane] = 0x80000000 | (0x7F << 20); // E4M3: the sign and the 7 magnitude bits, shifted by 20
            table[L + lane] = 0x80000000 | (0x7F << 21); // E5M2, shifted by 21
        }
        return table;
    }

    /**
     * The shift count as a vector, one per lane. Where the count is not a constant of the compiled loop (the kernels
     * take it as an argument, one loop for both FP8 formats), a scalar count compiled to a shift by a count register
     * that cost the FP8 score loop about 3.5 ns of 24 per key on Zen 4; the per-lane shift (hoisted out of the loop
     * with its broadcast) ran as fast as a literal count.
     */
    private static IntVector shiftCount(int shift) {
        return IntVector.broadcast(I, shift);
    }

    /** {@return the shift {@link #widenNormal} takes for FP8 codes of this format} */
    static int normalShift(QuantizedKv.Format format) {
        return format == QuantizedKv.Format.FP8_E4M3 ? 20 : 21;
    }

    /** {@return where {@link #widenNormal}'s mask for FP8 codes of this format starts} */
    static int normalConstants(QuantizedKv.Format format) {
        return format == QuantizedKv.Format.FP8_E4M3 ? 0 : L;
    }

    /**
     * {@return the power of two by which {@link #widenNormal}'s floats for normal FP8 codes of this format fall short
     * of the codes' values: {@code 2^120} (E4M3, exponent bias 7 against binary32's 127) or {@code 2^112} (E5M2,
     * bias 15)}
     */
    static float normalBias(QuantizedKv.Format format) {
        return format == QuantizedKv.Format.FP8_E4M3 ? 0x1p120f : 0x1p112f;
    }

    /**
     * {@return the magnitude below which a float times {@link #normalBias} is finite: {@code 2^8} (E4M3) or {@code
     * 2^16} (E5M2); the product of any float below it is exact}
     */
    static float normalLimit(QuantizedKv.Format format) {
        return format == QuantizedKv.Format.FP8_E4M3 ? 0x1p8f : 0x1p16f;
    }
}
