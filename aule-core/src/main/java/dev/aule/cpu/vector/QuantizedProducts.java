package dev.aule.cpu.vector;

import dev.aule.spi.QuantizedKv;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The decode kernels of quantized caches, reading 8-bit codes in place: a block's scale is folded into the scores
 * ({@code s_j = scale * (q . code_j)}) and into the probabilities for values ({@code o += (p_j * scale) code_j}), so
 * the inner loops are a byte-to-float widening and FMAs, with no dequantized copy of the rows. For widths where one
 * byte load widens to exactly one float vector ({@link #supported()}: 256 and 512 bits) and rows a whole number of
 * vectors long; other shapes dequantize into scratch ({@link ByteWidening}).
 *
 * <p>Keys are stored element by element ({@link QuantizedKv#keyCode}) and scored with a key in each lane ({@link
 * #scores}); values are stored row by row and accumulated a row's vectors at a time ({@link #accumulate}).
 *
 * <p>INT8 codes, and FP8 rows whose codes are all normal numbers, widen in two or three vector operations per
 * float vector ({@link ByteWidening#widenNormal}); an FP8 row holding a zero, subnormal, NaN or infinity pattern
 * needs ten ({@link ByteWidening#widen}). The shorter FP8 widening leaves out the exponent's rebiasing: its floats
 * are the codes' values times {@code 2^-120} (E4M3) or {@code 2^-112} (E5M2), normal numbers, and the kernels take
 * the power of two in the other factor instead, the queries ({@link #rebiasQueries}, once per tile) and the
 * probabilities (once per call). Multiplying a float by a power of two is exact short of overflow, so each product
 * {@code (q 2^120) (k 2^-120)} is the real number {@code q k}, and each FMA rounds it as it would the decoded code's:
 * the same bits. Where the power of two would overflow a factor (queries of magnitude {@code 2^8} and more against
 * E4M3 keys, {@code 2^16} against E5M2; the same bounds for a probability times its scale), the call widens every
 * FP8 code the full way. The caller says which rows are such ({@code abnormal}: the cache's row flags, or else
 * {@link #abnormalKeys} and {@link #abnormalRows}, scans of the codes), and those go another way: the score kernel
 * takes a vector of keys holding one with the full widening, its other vectors with the shorter; the value kernel runs
 * its keys in segments of one kind, in key order, each in the loop for its widening (a run where over a quarter of the
 * keys need the full widening takes it for every key). Each loop is written once per widening (and the score loop
 * once more for INT8): with two widenings in one loop, C2 passed its inlining budget and left vector operations out of
 * line, two to seven times slower. The choice depends on the codes alone, and either way a score or an output is the
 * same sum in the same order, so the bits do not depend on it.
 */
public final class QuantizedProducts {
    private static final VectorSpecies<Float> F = SimdWidth.F;
    private static final int L = SimdWidth.L;
    private static final int KT = SimdWidth.KT;

    private QuantizedProducts() {}

    /** {@return whether these kernels run at this width} */
    public static boolean supported() {
        return ByteWidening.PARTS == 1;
    }

    /**
     * The rows among {@code keys} rows of {@code dim} FP8 codes from {@code off} (at most 64) that hold a code which
     * is not a normal number, as the kernels' {@code abnormal} takes them, for caches that keep no row flags: bit
     * {@code j} for row {@code j}, or every bit where over a quarter of the rows hold one (the scan stops there).
     *
     * @param format an FP8 format
     * @param codes the codes
     * @param off the first row's first code
     * @param dim codes per row, rows adjacent
     * @param keys rows, at most 64
     * @return the rows' bits
     */
    public static long abnormalRows(QuantizedKv.Format format, byte[] codes, int off, int dim, int keys) {
        return ByteWidening.abnormalKeys(format, codes, off, dim, keys);
    }

    /**
     * The queries as {@link #scores} reads them beside {@code q} for FP8 keys of this format: {@code dst[i] = q[i] *
     * 2^120} (E4M3) or {@code 2^112} (E5M2) for {@code i < n}, exact. Returns whether the kernels may use them: false
     * for INT8, and where a query's magnitude is {@code 2^8} (E4M3) or {@code 2^16} (E5M2) or more, infinite or NaN
     * (its product would not be exact), {@code dst} then holding no promise.
     *
     * @param format the keys' format
     * @param q the tile's queries
     * @param n floats of {@code q} from 0
     * @param dst receives the products, at least {@code n} long
     * @return whether {@code dst} holds the queries {@link #scores} takes
     */
    public static boolean rebiasQueries(QuantizedKv.Format format, float[] q, int n, float[] dst) {
        if (format == QuantizedKv.Format.INT8 || !supported()) {
            return false;
        }
        float bias = ByteWidening.normalBias(format);
        FloatVector largest = FloatVector.zero(F);
        int i = 0;
        for (; i + L <= n; i += L) {
            FloatVector x = FloatVector.fromArray(F, q, i);
            largest = largest.max(x.abs());
            x.mul(bias).intoArray(dst, i);
        }
        float rest = 0f;
        for (; i < n; i++) {
            rest = Math.max(rest, Math.abs(q[i]));
            dst[i] = q[i] * bias;
        }
        // Math.max keeps a NaN, which fails the comparison.
        return Math.max(largest.reduceLanes(VectorOperators.MAX), rest) < ByteWidening.normalLimit(format);
    }

    /**
     * {@code p[t * KT + pCol + j] = (p[t * KT + pCol + j] * scale) * bias} for {@code t < rows}, {@code j < keys}: the
     * block's scale folded into the probabilities, then a power of two (1 for none), exact where the caller has made
     * sure that it does not overflow.
     */
    private static void scaleProbabilities(float[] p, int rows, int keys, int pCol, float scale, float bias) {
        for (int t = 0; t < rows; t++) {
            for (int j = t * KT + pCol, end = j + keys; j < end; j++) {
                p[j] = p[j] * scale * bias;
            }
        }
    }

    /** {@return bits 0 to {@code keys - 1} set, for {@code keys} from 1 to 64} */
    private static long firstBits(int keys) {
        return keys == 64 ? -1L : (1L << keys) - 1;
    }

    /** A run where over a quarter of the keys need the full widening takes it for every key. */
    private static boolean mostlyAbnormal(long abnormal, int keys) {
        return 4 * Long.bitCount(abnormal) > keys;
    }

    /**
     * The keys among {@code keys} keys of {@code dim} FP8 codes stored element by element ({@code codes[off + x *
     * keyStride + j]} for element {@code x} of key {@code j}, at most 64 keys), that hold a code which is not a normal
     * number, as {@link #scores} takes them, for caches that keep no row flags: bit {@code j} for key {@code j}.
     * One minimum per vector of keys over their elements, as {@link #abnormalRows}'s test.
     *
     * @param format an FP8 format
     * @param codes the codes
     * @param off key 0's element 0
     * @param keyStride codes from one element of a key to the next (the block size)
     * @param dim elements per key
     * @param keys keys, at most 64 and at most {@code keyStride}
     * @return the keys' bits
     */
    public static long abnormalKeys(
            QuantizedKv.Format format, byte[] codes, int off, int keyStride, int dim, int keys) {
        return ByteWidening.abnormalColumns(format, codes, off, keyStride, dim, keys);
    }

    /*
     * The score kernel's layout. A block's key codes are stored element by element (QuantizedKv.keyCode), so one
     * byte load holds element x of L consecutive keys and widens to one float vector with a key in each lane: the
     * scores of L keys accumulate lane by lane, sum_x q[x] * k_j[x] one FMA per element, and leave the loop as
     * one vector per query row, with no reduction across lanes. Against keys stored row by row (a vector along the
     * elements of one key, four rows' sums folded and extracted lane by lane per key), the loop does the same 32 FMAs
     * per key at D = 128 with about 35 fewer other operations: 14.1 against 19.5 ns per key for INT8 and 15.5
     * against 23.4 for FP8 E4M3 (Zen 4, one thread, four query rows, 64 blocks of 32 keys from L2).
     *
     * Tile: two vectors of keys (2L) by four query rows, eight accumulators; each broadcast query element feeds two
     * FMAs and each widened key vector four. One vector at a time (four accumulators, a broadcast per FMA) ran at
     * 22 ns per key against 15.6 for FP8, so the kernel pairs whole vectors of keys wherever they come from: the
     * two halves of a block of 2L keys, or two blocks of L (vLLM's and `aule bench serve`'s 16 at 512 bits). A
     * vector a run leaves part-filled, or one holding an FP8 key that needs the full widening, goes alone. Each
     * lane's sum is Math.fma's chain over x from 0 in order, so the scalar loop (scoresOneByOne, for keys whose
     * loads would pass the array's end, and ScalarTileMath) gives the same bits, and so does any pairing.
     *
     * The pair loops store whole vectors and the single ones through a mask made once per call: a masked store
     * beside the plain one in the pair loop passed C2's NodeCountInliningCutoff and boxed the accumulators (ten
     * times slower).
     */

    /**
     * The scores of a short tile's quantized keys, run by run ({@code TileMath.quantizedScores}'s contract): run
     * {@code r}'s {@code runKeys[r]} keys (at most {@code keyStride}) start at code {@code runOffsets[r]}, element
     * {@code x} of key {@code i} at {@code runOffsets[r] + x * keyStride + i}, its scale {@code runScales[r]}; the
     * runs fill columns {@code sCol ..} of each score row in order, at most 64 in all; {@code rows} a multiple of 4.
     * {@code abnormal}: FP8, bit {@code c - sCol} set when the key of column {@code c} may hold a code that is not a
     * normal number (any bits are safe: a clear bit over such a code reads it as another finite number); 0 for INT8.
     * {@code qRebiased}: FP8, the tile's queries as {@link #rebiasQueries} gave them where it returned true, else
     * null (every FP8 key then takes the full widening); INT8 ignores it.
     */
    public static void scores(
            float[] q,
            float[] qRebiased,
            int rows,
            int dp,
            QuantizedKv.Format format,
            byte[] k,
            int keyStride,
            int dim,
            int runs,
            int[] runOffsets,
            int[] runKeys,
            float[] runScales,
            long abnormal,
            float[] s,
            int sCol) {
        boolean int8 = format == QuantizedKv.Format.INT8;
        int shift = ByteWidening.normalShift(format);
        int constants = ByteWidening.normalConstants(format);
        float[] qShort = int8 ? q : qRebiased; // the queries of the shorter widening's products
        if (qShort == null) {
            abnormal = -1L;
        }
        // A vector's loads read L codes from each element's first, not past the array's end.
        long lastFirst = (long) k.length - L - (long) (dim - 1) * keyStride;
        int waitingOff = -1; // a whole vector of short-widening keys waiting for a partner
        int waitingCol = 0;
        float waitingScale = 0f;
        int col = sCol;
        for (int r = 0; r < runs; r++) {
            int off = runOffsets[r];
            int n = runKeys[r];
            float scale = runScales[r];
            for (int h = 0; h < n; h += L) {
                int m = Math.min(L, n - h);
                int at = off + h;
                int c = col + h;
                if (at > lastFirst) {
                    scoresOneByOne(q, rows, dp, format, k, at, keyStride, dim, m, scale, s, c);
                } else if (!int8 && (abnormal >>> (c - sCol) & firstBits(m)) != 0) {
                    scoresFull(q, rows, dp, format, k, at, keyStride, dim, m, scale, s, c);
                } else if (m < L) {
                    scoresShortOne(qShort, rows, dp, int8, shift, constants, k, at, keyStride, dim, m, scale, s, c);
                } else if (waitingOff < 0) {
                    waitingOff = at;
                    waitingCol = c;
                    waitingScale = scale;
                } else if (int8) {
                    scoresInt8(
                            qShort, rows, dp, k, waitingOff, at, keyStride, dim, waitingScale, scale, s, waitingCol, c);
                    waitingOff = -1;
                } else {
                    scoresShort(
                            qShort,
                            rows,
                            dp,
                            shift,
                            constants,
                            k,
                            waitingOff,
                            at,
                            keyStride,
                            dim,
                            waitingScale,
                            scale,
                            s,
                            waitingCol,
                            c);
                    waitingOff = -1;
                }
            }
            col += n;
        }
        if (waitingOff >= 0) {
            scoresShortOne(
                    qShort,
                    rows,
                    dp,
                    int8,
                    shift,
                    constants,
                    k,
                    waitingOff,
                    keyStride,
                    dim,
                    L,
                    waitingScale,
                    s,
                    waitingCol);
        }
    }

    /**
     * The scores of two whole vectors of INT8 keys, from codes {@code offA} and {@code offB} (scales {@code scaleA},
     * {@code scaleB}) into columns {@code colA ..} and {@code colB ..}: {@link #scoresShort}'s loop with the codes
     * converted straight to floats (with the format a branch in one shared loop, C2 compiled it about three times
     * slower once both formats had run).
     */
    private static void scoresInt8(
            float[] q,
            int rows,
            int dp,
            byte[] k,
            int offA,
            int offB,
            int keyStride,
            int dim,
            float scaleA,
            float scaleB,
            float[] s,
            int colA,
            int colB) {
        for (int t = 0; t < rows; t += 4) {
            int q0 = t * dp;
            int q1 = q0 + dp;
            int q2 = q1 + dp;
            int q3 = q2 + dp;
            FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
            FloatVector b0 = a0, b1 = a0, b2 = a0, b3 = a0;
            for (int x = 0, ka = offA, kb = offB; x < dim; x++, ka += keyStride, kb += keyStride) {
                FloatVector kv = (FloatVector)
                        ByteVector.fromArray(ByteWidening.B, k, ka).convertShape(VectorOperators.B2F, F, 0);
                FloatVector kw = (FloatVector)
                        ByteVector.fromArray(ByteWidening.B, k, kb).convertShape(VectorOperators.B2F, F, 0);
                FloatVector qb = FloatVector.broadcast(F, q[q0 + x]);
                a0 = qb.fma(kv, a0);
                b0 = qb.fma(kw, b0);
                qb = FloatVector.broadcast(F, q[q1 + x]);
                a1 = qb.fma(kv, a1);
                b1 = qb.fma(kw, b1);
                qb = FloatVector.broadcast(F, q[q2 + x]);
                a2 = qb.fma(kv, a2);
                b2 = qb.fma(kw, b2);
                qb = FloatVector.broadcast(F, q[q3 + x]);
                a3 = qb.fma(kv, a3);
                b3 = qb.fma(kw, b3);
            }
            int row = t * KT;
            a0.mul(scaleA).intoArray(s, row + colA);
            b0.mul(scaleB).intoArray(s, row + colB);
            a1.mul(scaleA).intoArray(s, row + KT + colA);
            b1.mul(scaleB).intoArray(s, row + KT + colB);
            a2.mul(scaleA).intoArray(s, row + 2 * KT + colA);
            b2.mul(scaleB).intoArray(s, row + 2 * KT + colB);
            a3.mul(scaleA).intoArray(s, row + 3 * KT + colA);
            b3.mul(scaleB).intoArray(s, row + 3 * KT + colB);
        }
    }

    /**
     * The scores of two whole vectors of FP8 keys whose codes are all normal ({@link ByteWidening#widenNormal}), as
     * {@link #scoresInt8} takes them, {@code q} the rebiased queries; for other patterns a finite score the caller
     * does not keep.
     */
    private static void scoresShort(
            float[] q,
            int rows,
            int dp,
            int shift,
            int constants,
            byte[] k,
            int offA,
            int offB,
            int keyStride,
            int dim,
            float scaleA,
            float scaleB,
            float[] s,
            int colA,
            int colB) {
        for (int t = 0; t < rows; t += 4) {
            int q0 = t * dp;
            int q1 = q0 + dp;
            int q2 = q1 + dp;
            int q3 = q2 + dp;
            FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
            FloatVector b0 = a0, b1 = a0, b2 = a0, b3 = a0;
            for (int x = 0, ka = offA, kb = offB; x < dim; x++, ka += keyStride, kb += keyStride) {
                FloatVector kv =
                        ByteWidening.widenNormal(ByteVector.fromArray(ByteWidening.B, k, ka), false, shift, constants);
                FloatVector kw =
                        ByteWidening.widenNormal(ByteVector.fromArray(ByteWidening.B, k, kb), false, shift, constants);
                FloatVector qb = FloatVector.broadcast(F, q[q0 + x]);
                a0 = qb.fma(kv, a0);
                b0 = qb.fma(kw, b0);
                qb = FloatVector.broadcast(F, q[q1 + x]);
                a1 = qb.fma(kv, a1);
                b1 = qb.fma(kw, b1);
                qb = FloatVector.broadcast(F, q[q2 + x]);
                a2 = qb.fma(kv, a2);
                b2 = qb.fma(kw, b2);
                qb = FloatVector.broadcast(F, q[q3 + x]);
                a3 = qb.fma(kv, a3);
                b3 = qb.fma(kw, b3);
            }
            int row = t * KT;
            a0.mul(scaleA).intoArray(s, row + colA);
            b0.mul(scaleB).intoArray(s, row + colB);
            a1.mul(scaleA).intoArray(s, row + KT + colA);
            b1.mul(scaleB).intoArray(s, row + KT + colB);
            a2.mul(scaleA).intoArray(s, row + 2 * KT + colA);
            b2.mul(scaleB).intoArray(s, row + 2 * KT + colB);
            a3.mul(scaleA).intoArray(s, row + 3 * KT + colA);
            b3.mul(scaleB).intoArray(s, row + 3 * KT + colB);
        }
    }

    /**
     * The scores of up to L FP8 keys of any pattern ({@link ByteWidening#widen}) from code {@code kOff} into columns
     * {@code sCol ..}, one vector: with two full widenings in the loop (as {@link #scoresShort}'s two), C2 passed its
     * inlining limits, left vector operations out of line and ran seven times slower. A normal key's score has the
     * same bits either way.
     */
    private static void scoresFull(
            float[] q,
            int rows,
            int dp,
            QuantizedKv.Format format,
            byte[] k,
            int kOff,
            int keyStride,
            int dim,
            int keys,
            float scale,
            float[] s,
            int sCol) {
        VectorMask<Float> lanes = F.indexInRange(0, keys);
        for (int t = 0; t < rows; t += 4) {
            int q0 = t * dp;
            int q1 = q0 + dp;
            int q2 = q1 + dp;
            int q3 = q2 + dp;
            FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
            for (int x = 0, kb = kOff; x < dim; x++, kb += keyStride) {
                FloatVector kv = ByteWidening.widen(format, ByteVector.fromArray(ByteWidening.B, k, kb), 0);
                a0 = FloatVector.broadcast(F, q[q0 + x]).fma(kv, a0);
                a1 = FloatVector.broadcast(F, q[q1 + x]).fma(kv, a1);
                a2 = FloatVector.broadcast(F, q[q2 + x]).fma(kv, a2);
                a3 = FloatVector.broadcast(F, q[q3 + x]).fma(kv, a3);
            }
            int at = t * KT + sCol;
            a0.mul(scale).intoArray(s, at, lanes);
            a1.mul(scale).intoArray(s, at + KT, lanes);
            a2.mul(scale).intoArray(s, at + 2 * KT, lanes);
            a3.mul(scale).intoArray(s, at + 3 * KT, lanes);
        }
    }

    /**
     * {@link #scoresFull}'s loop for up to L INT8 keys or FP8 keys whose codes are all normal ({@link
     * ByteWidening#widenNormal}, {@code q} the rebiased queries): a vector of keys with no partner.
     */
    private static void scoresShortOne(
            float[] q,
            int rows,
            int dp,
            boolean int8,
            int shift,
            int constants,
            byte[] k,
            int kOff,
            int keyStride,
            int dim,
            int keys,
            float scale,
            float[] s,
            int sCol) {
        VectorMask<Float> lanes = F.indexInRange(0, keys);
        for (int t = 0; t < rows; t += 4) {
            int q0 = t * dp;
            int q1 = q0 + dp;
            int q2 = q1 + dp;
            int q3 = q2 + dp;
            FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
            for (int x = 0, kb = kOff; x < dim; x++, kb += keyStride) {
                FloatVector kv =
                        ByteWidening.widenNormal(ByteVector.fromArray(ByteWidening.B, k, kb), int8, shift, constants);
                a0 = FloatVector.broadcast(F, q[q0 + x]).fma(kv, a0);
                a1 = FloatVector.broadcast(F, q[q1 + x]).fma(kv, a1);
                a2 = FloatVector.broadcast(F, q[q2 + x]).fma(kv, a2);
                a3 = FloatVector.broadcast(F, q[q3 + x]).fma(kv, a3);
            }
            int at = t * KT + sCol;
            a0.mul(scale).intoArray(s, at, lanes);
            a1.mul(scale).intoArray(s, at + KT, lanes);
            a2.mul(scale).intoArray(s, at + 2 * KT, lanes);
            a3.mul(scale).intoArray(s, at + 3 * KT, lanes);
        }
    }

    /**
     * {@link #scores} of up to L keys from code {@code kOff} one at a time in scalar code, for keys whose vector loads
     * would pass the array's end: the same chain of fused multiply-adds as a vector lane's, so the same bits.
     */
    private static void scoresOneByOne(
            float[] q,
            int rows,
            int dp,
            QuantizedKv.Format format,
            byte[] k,
            int kOff,
            int keyStride,
            int dim,
            int keys,
            float scale,
            float[] s,
            int sCol) {
        for (int t = 0; t < rows; t++) {
            for (int j = 0; j < keys; j++) {
                float dot = 0f;
                for (int x = 0; x < dim; x++) {
                    dot = Math.fma(q[t * dp + x], format.decode(k[kOff + x * keyStride + j]), dot);
                }
                s[t * KT + sCol + j] = dot * scale;
            }
        }
    }

    /**
     * {@code o[t] = alpha[t] o[t] + sum_j (p[t * KT + pCol + j] * scale) decode(v[vOff + j * dim ..])} over the
     * first {@code dim} floats of each output row ({@code dvp} apart) for {@code t < rows} (a multiple of 4),
     * {@code j < keys}, {@code pCol + keys <= KT} (at most 64); {@code dim} a multiple of the lanes. The probabilities
     * {@code p} of those rows and keys are left multiplied by {@code scale}, and for FP8 codes possibly by a power of
     * two as well. {@code pBound}: no probability's magnitude exceeds it (1 for softmax probabilities, the inverse
     * keep rate with dropout). {@code abnormal} as for the scores.
     */
    public static void accumulate(
            float[] p,
            int rows,
            int keys,
            int pCol,
            QuantizedKv.Format format,
            byte[] v,
            int vOff,
            int dim,
            float scale,
            float pBound,
            long abnormal,
            int dvp,
            float[] o,
            float[] alpha) {
        // The scale is folded into the probabilities once, in place (the tile's probabilities are not read again).
        boolean int8 = format == QuantizedKv.Format.INT8;
        int shift = ByteWidening.normalShift(format);
        int constants = ByteWidening.normalConstants(format);
        if (int8) {
            scaleProbabilities(p, rows, keys, pCol, scale, 1f);
            accumulateShort(p, rows, 0, keys, pCol, true, shift, constants, v, vOff, dim, dvp, o, alpha);
            return;
        }
        abnormal &= firstBits(keys);
        // Rounding is monotonic, so no scaled probability exceeds pBound * scale rounded: below the limit, none
        // overflows once multiplied by the shorter widening's power of two. (A bound from the caller rather than a
        // maximum taken here: the scan and its reduction cost the value kernel about a nanosecond per key.)
        if (mostlyAbnormal(abnormal, keys) || !(Math.abs(pBound * scale) < ByteWidening.normalLimit(format))) {
            scaleProbabilities(p, rows, keys, pCol, scale, 1f);
            accumulateFull(p, rows, 0, keys, pCol, 1f, format, v, vOff, dim, dvp, o, alpha);
            return;
        }
        float bias = ByteWidening.normalBias(format);
        scaleProbabilities(p, rows, keys, pCol, scale, bias);
        if (abnormal == 0) {
            accumulateShort(p, rows, 0, keys, pCol, false, shift, constants, v, vOff, dim, dvp, o, alpha);
            return;
        }
        // Segments of one kind in key order: o is stored and reloaded between them, exactly, so the sums are the ones
        // a single pass would make; only the first applies alpha. The full widening's segments take the probabilities
        // back by the inverse power of two, again exactly.
        float[] rescale = alpha;
        for (int j = 0; j < keys; ) {
            long rest = abnormal >>> j;
            boolean full = (rest & 1) != 0;
            int end = Math.min(keys, j + Long.numberOfTrailingZeros(full ? ~rest : rest));
            if (full) {
                accumulateFull(p, rows, j, end, pCol, 1f / bias, format, v, vOff, dim, dvp, o, rescale);
            } else {
                accumulateShort(p, rows, j, end, pCol, false, shift, constants, v, vOff, dim, dvp, o, rescale);
            }
            rescale = null;
            j = end;
        }
    }

    /**
     * {@link #accumulate}'s sums over keys {@code [from, to)}, the scale already in {@code p}, for INT8 codes or FP8
     * codes all normal ({@link ByteWidening#widenNormal}, {@code p} then rebiased as well); a null {@code alpha}
     * leaves the rows as they are.
     */
    private static void accumulateShort(
            float[] p,
            int rows,
            int from,
            int to,
            int pCol,
            boolean int8,
            int shift,
            int constants,
            byte[] v,
            int vOff,
            int dim,
            int dvp,
            float[] o,
            float[] alpha) {
        for (int t = 0; t < rows; t += 4) {
            int p0 = t * KT + pCol;
            int p1 = p0 + KT;
            int p2 = p1 + KT;
            int p3 = p2 + KT;
            int o0 = t * dvp;
            int o1 = o0 + dvp;
            int o2 = o1 + dvp;
            int o3 = o2 + dvp;
            float al0 = alpha == null ? 1f : alpha[t];
            float al1 = alpha == null ? 1f : alpha[t + 1];
            float al2 = alpha == null ? 1f : alpha[t + 2];
            float al3 = alpha == null ? 1f : alpha[t + 3];
            int c = 0;
            // Two vectors of columns at a time: each broadcast probability feeds two FMAs. (A 4 x 4 block of
            // accumulators, as the F32 kernel's, ran decode at under half this speed at 512 bits.)
            for (; c + 2 * L <= dim; c += 2 * L) {
                FloatVector a00 = FloatVector.fromArray(F, o, o0 + c).mul(al0);
                FloatVector a01 = FloatVector.fromArray(F, o, o0 + c + L).mul(al0);
                FloatVector a10 = FloatVector.fromArray(F, o, o1 + c).mul(al1);
                FloatVector a11 = FloatVector.fromArray(F, o, o1 + c + L).mul(al1);
                FloatVector a20 = FloatVector.fromArray(F, o, o2 + c).mul(al2);
                FloatVector a21 = FloatVector.fromArray(F, o, o2 + c + L).mul(al2);
                FloatVector a30 = FloatVector.fromArray(F, o, o3 + c).mul(al3);
                FloatVector a31 = FloatVector.fromArray(F, o, o3 + c + L).mul(al3);
                for (int j = from, vb = vOff + from * dim + c; j < to; j++, vb += dim) {
                    FloatVector v0 = ByteWidening.widenNormal(
                            ByteVector.fromArray(ByteWidening.B, v, vb), int8, shift, constants);
                    FloatVector v1 = ByteWidening.widenNormal(
                            ByteVector.fromArray(ByteWidening.B, v, vb + L), int8, shift, constants);
                    FloatVector b = FloatVector.broadcast(F, p[p0 + j]);
                    a00 = v0.fma(b, a00);
                    a01 = v1.fma(b, a01);
                    b = FloatVector.broadcast(F, p[p1 + j]);
                    a10 = v0.fma(b, a10);
                    a11 = v1.fma(b, a11);
                    b = FloatVector.broadcast(F, p[p2 + j]);
                    a20 = v0.fma(b, a20);
                    a21 = v1.fma(b, a21);
                    b = FloatVector.broadcast(F, p[p3 + j]);
                    a30 = v0.fma(b, a30);
                    a31 = v1.fma(b, a31);
                }
                a00.intoArray(o, o0 + c);
                a01.intoArray(o, o0 + c + L);
                a10.intoArray(o, o1 + c);
                a11.intoArray(o, o1 + c + L);
                a20.intoArray(o, o2 + c);
                a21.intoArray(o, o2 + c + L);
                a30.intoArray(o, o3 + c);
                a31.intoArray(o, o3 + c + L);
            }
            for (; c < dim; c += L) {
                FloatVector a0 = FloatVector.fromArray(F, o, o0 + c).mul(al0);
                FloatVector a1 = FloatVector.fromArray(F, o, o1 + c).mul(al1);
                FloatVector a2 = FloatVector.fromArray(F, o, o2 + c).mul(al2);
                FloatVector a3 = FloatVector.fromArray(F, o, o3 + c).mul(al3);
                for (int j = from, vb = vOff + from * dim + c; j < to; j++, vb += dim) {
                    FloatVector v0 = ByteWidening.widenNormal(
                            ByteVector.fromArray(ByteWidening.B, v, vb), int8, shift, constants);
                    a0 = v0.fma(FloatVector.broadcast(F, p[p0 + j]), a0);
                    a1 = v0.fma(FloatVector.broadcast(F, p[p1 + j]), a1);
                    a2 = v0.fma(FloatVector.broadcast(F, p[p2 + j]), a2);
                    a3 = v0.fma(FloatVector.broadcast(F, p[p3 + j]), a3);
                }
                a0.intoArray(o, o0 + c);
                a1.intoArray(o, o1 + c);
                a2.intoArray(o, o2 + c);
                a3.intoArray(o, o3 + c);
            }
        }
    }

    /**
     * {@link #accumulate}'s sums over keys {@code [from, to)}, FP8 codes of any pattern ({@link ByteWidening#widen}),
     * each probability {@code p[..] * unbias} (the scale folded in: 1 where {@code p} holds that, the inverse power of
     * two where {@code p} holds the rebiased probabilities); a null {@code alpha} leaves the rows as they are.
     */
    private static void accumulateFull(
            float[] p,
            int rows,
            int from,
            int to,
            int pCol,
            float unbias,
            QuantizedKv.Format format,
            byte[] v,
            int vOff,
            int dim,
            int dvp,
            float[] o,
            float[] alpha) {
        for (int t = 0; t < rows; t += 4) {
            int p0 = t * KT + pCol;
            int p1 = p0 + KT;
            int p2 = p1 + KT;
            int p3 = p2 + KT;
            int o0 = t * dvp;
            int o1 = o0 + dvp;
            int o2 = o1 + dvp;
            int o3 = o2 + dvp;
            float al0 = alpha == null ? 1f : alpha[t];
            float al1 = alpha == null ? 1f : alpha[t + 1];
            float al2 = alpha == null ? 1f : alpha[t + 2];
            float al3 = alpha == null ? 1f : alpha[t + 3];
            int c = 0;
            // Two vectors of columns at a time: each broadcast probability feeds two FMAs. (A 4 x 4 block of
            // accumulators, as the F32 kernel's, ran decode at under half this speed at 512 bits.)
            for (; c + 2 * L <= dim; c += 2 * L) {
                FloatVector a00 = FloatVector.fromArray(F, o, o0 + c).mul(al0);
                FloatVector a01 = FloatVector.fromArray(F, o, o0 + c + L).mul(al0);
                FloatVector a10 = FloatVector.fromArray(F, o, o1 + c).mul(al1);
                FloatVector a11 = FloatVector.fromArray(F, o, o1 + c + L).mul(al1);
                FloatVector a20 = FloatVector.fromArray(F, o, o2 + c).mul(al2);
                FloatVector a21 = FloatVector.fromArray(F, o, o2 + c + L).mul(al2);
                FloatVector a30 = FloatVector.fromArray(F, o, o3 + c).mul(al3);
                FloatVector a31 = FloatVector.fromArray(F, o, o3 + c + L).mul(al3);
                for (int j = from, vb = vOff + from * dim + c; j < to; j++, vb += dim) {
                    FloatVector v0 = ByteWidening.widen(format, ByteVector.fromArray(ByteWidening.B, v, vb), 0);
                    FloatVector v1 = ByteWidening.widen(format, ByteVector.fromArray(ByteWidening.B, v, vb + L), 0);
                    FloatVector b = FloatVector.broadcast(F, p[p0 + j] * unbias);
                    a00 = v0.fma(b, a00);
                    a01 = v1.fma(b, a01);
                    b = FloatVector.broadcast(F, p[p1 + j] * unbias);
                    a10 = v0.fma(b, a10);
                    a11 = v1.fma(b, a11);
                    b = FloatVector.broadcast(F, p[p2 + j] * unbias);
                    a20 = v0.fma(b, a20);
                    a21 = v1.fma(b, a21);
                    b = FloatVector.broadcast(F, p[p3 + j] * unbias);
                    a30 = v0.fma(b, a30);
                    a31 = v1.fma(b, a31);
                }
                a00.intoArray(o, o0 + c);
                a01.intoArray(o, o0 + c + L);
                a10.intoArray(o, o1 + c);
                a11.intoArray(o, o1 + c + L);
                a20.intoArray(o, o2 + c);
                a21.intoArray(o, o2 + c + L);
                a30.intoArray(o, o3 + c);
                a31.intoArray(o, o3 + c + L);
            }
            for (; c < dim; c += L) {
                FloatVector a0 = FloatVector.fromArray(F, o, o0 + c).mul(al0);
                FloatVector a1 = FloatVector.fromArray(F, o, o1 + c).mul(al1);
                FloatVector a2 = FloatVector.fromArray(F, o, o2 + c).mul(al2);
                FloatVector a3 = FloatVector.fromArray(F, o, o3 + c).mul(al3);
                for (int j = from, vb = vOff + from * dim + c; j < to; j++, vb += dim) {
                    FloatVector v0 = ByteWidening.widen(format, ByteVector.fromArray(ByteWidening.B, v, vb), 0);
                    a0 = v0.fma(FloatVector.broadcast(F, p[p0 + j] * unbias), a0);
                    a1 = v0.fma(FloatVector.broadcast(F, p[p1 + j] * unbias), a1);
                    a2 = v0.fma(FloatVector.broadcast(F, p[p2 + j] * unbias), a2);
                    a3 = v0.fma(FloatVector.broadcast(F, p[p3 + j] * unbias), a3);
                }
                a0.intoArray(o, o0 + c);
                a1.intoArray(o, o1 + c);
                a2.intoArray(o, o2 + c);
                a3.intoArray(o, o3 + c);
            }
        }
    }
}
