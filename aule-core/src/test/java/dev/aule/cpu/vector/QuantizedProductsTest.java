package dev.aule.cpu.vector;

import dev.aule.spi.QuantizedKv;
import jdk.incubator.vector.VectorSpecies;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The quantized decode kernels at this JVM's width (the 256- and 128-bit executions run them again), bit for bit
 * against the decoded codes: the score kernel one FMA chain per score over keys stored element by element, its scan
 * exact, the value kernel one FMA per key and column, whatever the number of keys, with FP8 runs that hold NaN or
 * infinity patterns and runs that do not, queries and probabilities of every range (the shorter FP8 widening's power
 * of two taken in them exactly, or not at all where it would overflow), and nothing written outside the kernel's
 * columns.
 */
class QuantizedProductsTest {
    private static final VectorSpecies<Float> F = SimdWidth.F;
    private static final int L = SimdWidth.L;
    private static final int KT = SimdWidth.KT;

    /**
     * Codes of every kind. FP8, one case in three each: random codes (most rows hold a zero, subnormal, NaN or
     * infinity pattern somewhere, which the kernels must decode exactly), normal codes only (the shorter widening for
     * every row), or normal codes with a few other patterns in some rows (both ways in one call); and in one case in
     * three a NaN or infinity pattern on top.
     */
    private static void fillCodes(SplittableRandom rnd, QuantizedKv.Format format, byte[] codes) {
        int kind = rnd.nextInt(3);
        for (int i = 0; i < codes.length; i++) {
            byte c = (byte) rnd.nextInt(256);
            if (format == QuantizedKv.Format.INT8) {
                codes[i] = c;
            } else if (kind == 0) {
                codes[i] = (byte) (c & 0xBF);
            } else {
                codes[i] = normal(format, c);
            }
        }
        if (format != QuantizedKv.Format.INT8 && kind == 2) {
            for (int n = rnd.nextInt(4); n > 0 && codes.length > 0; n--) {
                codes[rnd.nextInt(codes.length)] = (byte) rnd.nextInt(8); // zero or subnormal
            }
        }
        if (format != QuantizedKv.Format.INT8 && codes.length > 0 && rnd.nextInt(3) == 0) {
            int special = format == QuantizedKv.Format.FP8_E4M3 ? 0x7F : 0x7C + rnd.nextInt(4);
            codes[rnd.nextInt(codes.length)] = (byte) (special | (rnd.nextBoolean() ? 0x80 : 0));
        }
    }

    /**
     * An {@code abnormal} argument for a run of {@code keys} rows: the rows that hold a code which is not a normal FP8
     * number, as a cache keeps them, or the scan's answer, or those bits with others set as well (a set bit over a
     * normal row is allowed and costs only speed), or every bit; 0 for INT8.
     */
    private static long abnormalArgument(
            SplittableRandom rnd, QuantizedKv.Format format, byte[] codes, int off, int dim, int keys) {
        if (format == QuantizedKv.Format.INT8) {
            return 0;
        }
        long exact = 0;
        for (int j = 0; j < keys; j++) {
            for (int x = 0; x < dim; x++) {
                if (!format.isNormal(codes[off + j * dim + x])) {
                    exact |= 1L << j;
                    break;
                }
            }
        }
        return switch (rnd.nextInt(4)) {
            case 0 -> exact;
            case 1 -> QuantizedProducts.abnormalRows(format, codes, off, dim, keys);
            case 2 -> exact | rnd.nextLong();
            default -> -1L;
        };
    }

    /** A normal FP8 code from any byte: the exponent field moved off all zeros and all ones. */
    private static byte normal(QuantizedKv.Format format, byte c) {
        int shift = format == QuantizedKv.Format.FP8_E4M3 ? 3 : 2;
        int top = format == QuantizedKv.Format.FP8_E4M3 ? 15 : 31;
        int exponent = (c & 0x7F) >>> shift;
        int fraction = c & ((1 << shift) - 1);
        if (exponent == 0) {
            exponent = 1;
        } else if (exponent == top) {
            exponent = top - 1;
        }
        return (byte) ((c & 0x80) | exponent << shift | fraction);
    }

    /** Every key count up to {@code dense}, then a few more up to a whole key tile ({@code KT}, a 64-bit mask). */
    private static int[] keyCounts(int dense) {
        return java.util.stream.IntStream.concat(
                        java.util.stream.IntStream.rangeClosed(0, dense),
                        java.util.stream.IntStream.of(KT / 2 + 5, KT - 7, KT - 1, KT))
                .filter(n -> n <= KT)
                .distinct()
                .toArray();
    }

    /**
     * Queries of every range: mostly normal magnitudes, in one case in four a few of {@code 2^8} and more (past which
     * E4M3's rebiased queries would overflow) or of {@code 2^16} and more (E5M2's), in one in four some subnormal
     * floats, and rarely an infinity or NaN.
     */
    private static float[] queries(SplittableRandom rnd, QuantizedKv.Format format, int n) {
        float[] q = new float[n];
        int kind = rnd.nextInt(4);
        for (int i = 0; i < n; i++) {
            q[i] = (float) rnd.nextGaussian();
            if (kind == 1 && rnd.nextInt(16) == 0) {
                q[i] *= rnd.nextBoolean() ? 0x1p8f : 0x1p16f;
            } else if (kind == 2 && rnd.nextInt(4) == 0) {
                q[i] *= 0x1p-130f;
            }
        }
        if (n > 0 && rnd.nextInt(20) == 0) {
            q[rnd.nextInt(n)] = rnd.nextBoolean() ? Float.POSITIVE_INFINITY : Float.NaN;
        }
        return q;
    }

    private static float largest(float[] x) {
        float m = 0f;
        for (float f : x) {
            m = Math.max(m, Math.abs(f));
        }
        return m;
    }

    /** The magnitude from which a query's product with the format's power of two would overflow. */
    private static float limit(QuantizedKv.Format format) {
        return format == QuantizedKv.Format.FP8_E4M3 ? 0x1p8f : 0x1p16f;
    }

    /** The same bits, or both NaN (a NaN's payload after arithmetic is the hardware's). */
    private static void assertSameFloat(float want, float got, String where) {
        if (Float.isNaN(want)) {
            assertTrue(Float.isNaN(got), where + ": want NaN, got " + got);
        } else {
            assertEquals(
                    Float.floatToRawIntBits(want),
                    Float.floatToRawIntBits(got),
                    where + ": want " + want + ", got " + got);
        }
    }

    @Test
    void valuesAccumulateAsOneFmaPerKeyAndColumn() {
        Assumptions.assumeTrue(QuantizedProducts.supported(), "codes are read in place at 256 and 512 bits only");
        SplittableRandom rnd = new SplittableRandom(13);
        for (QuantizedKv.Format format : QuantizedKv.Format.values()) {
            for (int keys : keyCounts(L + 3)) {
                int dim = L * (1 + rnd.nextInt(9));
                int rows = 4 * (1 + rnd.nextInt(2));
                int dvp = dim + L * rnd.nextInt(2);
                int pCol = rnd.nextInt(Math.min(3, KT - keys + 1));
                // Probabilities up to a bound (above 1 as with dropout), some so small that times the scale they are
                // subnormal floats.
                float pBound = rnd.nextBoolean() ? 1f : 3f;
                float[] p = new float[rows * KT];
                for (int i = 0; i < p.length; i++) {
                    p[i] = (float) rnd.nextDouble() * pBound * (rnd.nextInt(8) == 0 ? 0x1p-130f : 1f);
                }
                float[] o = new float[rows * dvp];
                for (int i = 0; i < o.length; i++) {
                    o[i] = (float) rnd.nextGaussian();
                }
                float[] alpha = new float[rows];
                for (int t = 0; t < rows; t++) {
                    alpha[t] = (float) rnd.nextDouble();
                }
                int vOff = rnd.nextInt(5);
                byte[] v = new byte[vOff + keys * dim + 3];
                fillCodes(rnd, format, v);
                // Scales up to 2^17, past 2^8 E4M3's and past 2^16 E5M2's probabilities cannot take the power of two
                // of the shorter widening (the kernel then widens every code the full way).
                float scale = (float) (rnd.nextDouble(0.01, 2) * new double[] {1, 1, 0x1p8, 0x1p16}[rnd.nextInt(4)]);
                float[] want = o.clone();
                for (int t = 0; t < rows; t++) {
                    for (int c = 0; c < dim; c++) {
                        float a = want[t * dvp + c] * alpha[t];
                        for (int j = 0; j < keys; j++) {
                            float weight = p[t * KT + pCol + j] * scale;
                            a = Math.fma(format.decode(v[vOff + j * dim + c]), weight, a);
                        }
                        want[t * dvp + c] = a;
                    }
                }
                long abnormal = abnormalArgument(rnd, format, v, vOff, dim, keys);
                QuantizedProducts.accumulate(
                        p, rows, keys, pCol, format, v, vOff, dim, scale, pBound, abnormal, dvp, o, alpha);
                for (int t = 0; t < rows; t++) {
                    for (int c = 0; c < dvp; c++) {
                        assertSameFloat(
                                want[t * dvp + c],
                                o[t * dvp + c],
                                format + ", " + keys + " keys, dim " + dim + ": row " + t + ", column " + c);
                    }
                }
            }
        }
    }

    /** The keys among {@code keys} stored element by element that hold a code which is not a normal FP8 number. */
    private static long abnormalColumns(
            QuantizedKv.Format format, byte[] codes, int off, int keyStride, int dim, int keys) {
        long exact = 0;
        for (int j = 0; j < keys; j++) {
            for (int x = 0; x < dim; x++) {
                if (!format.isNormal(codes[off + x * keyStride + j])) {
                    exact |= 1L << j;
                    break;
                }
            }
        }
        return exact;
    }

    @Test
    void scoresEqualOneFmaChainPerScore() {
        Assumptions.assumeTrue(QuantizedProducts.supported(), "codes are read in place at 256 and 512 bits only");
        SplittableRandom rnd = new SplittableRandom(11);
        for (QuantizedKv.Format format : QuantizedKv.Format.values()) {
            for (int trial = 0; trial < 120; trial++) {
                // A pool of blocks stored element by element, and a tile of runs of consecutive keys of one block
                // each: block sizes below, at and above the vector's lanes, runs starting inside blocks, blocks at
                // the array's end (whose vector loads would pass it).
                int blockSize = new int[] {1, 3, L / 2, L, L + 1, 2 * L, 2 * L + 3, 4 * L}[rnd.nextInt(8)];
                int dim = rnd.nextInt(3) == 0 ? 1 + rnd.nextInt(70) : L * (1 + rnd.nextInt(8));
                int blocks = 1 + rnd.nextInt(6);
                int rows = 4 * (1 + rnd.nextInt(2));
                int dp = dim + rnd.nextInt(L + 1);
                float[] q = queries(rnd, format, rows * dp);
                int base = rnd.nextInt(5);
                byte[] k = new byte[base + blocks * blockSize * dim + (rnd.nextBoolean() ? 0 : rnd.nextInt(2 * L))];
                fillCodes(rnd, format, k);
                int sCol = rnd.nextInt(3);
                int[] offsets = new int[KT];
                int[] counts = new int[KT];
                float[] scales = new float[KT];
                int runs = 0;
                int total = 0;
                while (total < KT - sCol && (runs == 0 || rnd.nextInt(4) != 0)) {
                    int block = rnd.nextInt(blocks);
                    int slot = rnd.nextInt(3) == 0 ? rnd.nextInt(blockSize) : 0;
                    int n = Math.min(KT - sCol - total, 1 + rnd.nextInt(blockSize - slot));
                    offsets[runs] = base + block * blockSize * dim + slot;
                    counts[runs] = n;
                    scales[runs] = (float) rnd.nextDouble(0.01, 2);
                    runs++;
                    total += n;
                }
                long exact = 0;
                for (int r = 0, c = 0; r < runs; c += counts[r], r++) {
                    long run = format == QuantizedKv.Format.INT8
                            ? 0
                            : abnormalColumns(format, k, offsets[r], blockSize, dim, counts[r]);
                    if (format != QuantizedKv.Format.INT8) {
                        assertEquals(
                                run,
                                QuantizedProducts.abnormalKeys(format, k, offsets[r], blockSize, dim, counts[r]),
                                format + ", blocks of " + blockSize + ", dim " + dim + ": the scan of run " + r);
                    }
                    exact |= run << c;
                }
                long abnormal = switch (format == QuantizedKv.Format.INT8 ? 0 : rnd.nextInt(3)) {
                    case 0 -> exact;
                    case 1 -> exact | rnd.nextLong();
                    default -> -1L;
                };
                float[] s = new float[rows * KT];
                // The rebiased queries where they serve, sometimes withheld (every FP8 key then widens the full way).
                float[] rebiased = new float[q.length];
                boolean usable = QuantizedProducts.rebiasQueries(format, q, q.length, rebiased);
                assertEquals(
                        format != QuantizedKv.Format.INT8 && largest(q) < limit(format),
                        usable,
                        format + ": whether the rebiased queries serve, largest magnitude " + largest(q));
                float[] qRebiased = usable && rnd.nextInt(4) != 0 ? rebiased : null;
                QuantizedProducts.scores(
                        q, qRebiased, rows, dp, format, k, blockSize, dim, runs, offsets, counts, scales, abnormal, s,
                        sCol);
                for (int r = 0, c = sCol; r < runs; c += counts[r], r++) {
                    for (int t = 0; t < rows; t++) {
                        for (int j = 0; j < counts[r]; j++) {
                            float dot = 0f;
                            for (int x = 0; x < dim; x++) {
                                dot = Math.fma(q[t * dp + x], format.decode(k[offsets[r] + x * blockSize + j]), dot);
                            }
                            assertSameFloat(
                                    dot * scales[r],
                                    s[t * KT + c + j],
                                    format + ", blocks of " + blockSize + ", dim " + dim + ": run " + r + " row " + t
                                            + ", key " + j);
                        }
                    }
                }
                for (int t = 0; t < rows; t++) {
                    for (int c = 0; c < KT; c++) {
                        if (c < sCol || c >= sCol + total) {
                            assertEquals(0f, s[t * KT + c], "row " + t + " column " + c + " is not the kernel's");
                        }
                    }
                }
            }
        }
    }
}
