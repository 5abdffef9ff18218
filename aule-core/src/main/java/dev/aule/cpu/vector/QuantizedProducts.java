package dev.aule.cpu.vector;

import dev.aule.spi.QuantizedKv;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The decode kernels of quantized caches, reading 8-bit codes in place: a block's scale is folded into the scores
 * ({@code s_j = scale * (q . code_j)}) and into the probabilities for values ({@code o += (p_j * scale) code_j}), so
 * the inner loops are a byte-to-float widening and FMAs, with no dequantized copy of the rows. For widths where one
 * byte load widens to exactly one float vector ({@link #supported()}: 256 and 512 bits) and rows a whole number of
 * vectors long; other shapes dequantize into scratch ({@link ByteWidening}).
 *
 * <p>INT8 codes, and FP8 rows whose codes are all normal numbers, widen in two to four vector operations per float
 * vector ({@link ByteWidening#widenNormal}); an FP8 row holding a zero, subnormal, NaN or infinity pattern needs ten
 * ({@link ByteWidening#widen}). The caller says which rows are such ({@code abnormal}: the cache's row flags, or else
 * {@link #abnormalRows}, a scan of about three operations per 64 codes), and the few such rows go another way: the
 * score kernel scores every key with the shorter widening and then those rows again, one at a time with the full
 * widening, in a method of their own; the value kernel runs its keys in segments of one kind, in key order, each in the
 * loop for its widening. A run where over a quarter of the keys need the full widening takes it for every key. Each
 * loop is written once per widening (and the score loop once more for INT8, about a tenth faster than sharing FP8's):
 * with two widenings in one loop, C2 passed its inlining budget and left vector operations out of line, about twice as
 * slow. The choice depends on the codes alone, and either way a score or an output is the same sum in the same order,
 * so the bits do not depend on it.
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

    /** {@return bits 0 to {@code keys - 1} set, for {@code keys} from 1 to 64} */
    private static long firstBits(int keys) {
        return keys == 64 ? -1L : (1L << keys) - 1;
    }

    /** A run where over a quarter of the keys need the full widening takes it for every key. */
    private static boolean mostlyAbnormal(long abnormal, int keys) {
        return 4 * Long.bitCount(abnormal) > keys;
    }

    /**
     * {@code s[t * KT + sCol + j] = scale * sum_x q[t * dp + x] decode(k[kOff + j * dim + x])} for {@code t <
     * rows} (a multiple of 4), {@code j < keys}, {@code sCol + keys <= KT} (at most 64); {@code dim} a multiple of the
     * lanes, {@code <= dp}. {@code abnormal}: FP8, bit {@code j} set when key {@code j} may hold a code that is not a
     * normal number (bits from {@code keys} up are ignored; any bits are safe: a clear bit over such a code reads it as
     * another finite number); 0 for INT8.
     */
    public static void scoresByRow(
            float[] q,
            int rows,
            int dp,
            QuantizedKv.Format format,
            byte[] k,
            int kOff,
            int dim,
            int keys,
            float scale,
            long abnormal,
            float[] s,
            int sCol) {
        if (format == QuantizedKv.Format.INT8) {
            scoresInt8(q, rows, dp, k, kOff, dim, keys, scale, s, sCol);
            return;
        }
        long all = firstBits(keys);
        abnormal &= all;
        if (mostlyAbnormal(abnormal, keys)) { // each key once, with the full widening
            scoresOneByOne(q, rows, dp, format, k, kOff, dim, all, scale, s, sCol);
            return;
        }
        scoresInPairs(
                q,
                rows,
                dp,
                ByteWidening.normalShift(format),
                ByteWidening.normalConstants(format),
                k,
                kOff,
                dim,
                keys,
                scale,
                s,
                sCol);
        if (abnormal != 0) { // scored again, over the shorter widening's finite stand-ins
            scoresOneByOne(q, rows, dp, format, k, kOff, dim, abnormal, scale, s, sCol);
        }
    }

    /**
     * {@link #scoresByRow} of INT8 codes.
     */
    private static void scoresInt8(
            float[] q, int rows, int dp, byte[] k, int kOff, int dim, int keys, float scale, float[] s, int sCol) {
        // Scores.scoresByRow's loops over codes (rows dim apart), each key vector converted from its bytes, the
        // block's scale applied to each sum.
        // Two keys at a time: 8 independent accumulator chains, each loaded query vector feeding 2 FMAs, and the 4
        // rows' sums of a key reduced together (Reductions.sums, sum()'s bits); an odd last key scored twice and kept
        // once. (One key at a time waited on its 4 chains and 4 reductions: about 1.5 times slower from L1; 4 keys at
        // a time spilled.)
        int j = 0;
        int kb = kOff;
        for (; j < keys; j += 2, kb += 2 * dim) {
            int kc = j + 1 < keys ? kb + dim : kb; // an odd last key: scored twice, kept once
            for (int t = 0; t < rows; t += 4) {
                int q0 = t * dp;
                int q1 = q0 + dp;
                int q2 = q1 + dp;
                int q3 = q2 + dp;
                FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
                FloatVector b0 = a0, b1 = a0, b2 = a0, b3 = a0;
                for (int x = 0; x < dim; x += L) {
                    FloatVector kv = (FloatVector)
                            ByteVector.fromArray(ByteWidening.B, k, kb + x).convertShape(VectorOperators.B2F, F, 0);
                    FloatVector kw = (FloatVector)
                            ByteVector.fromArray(ByteWidening.B, k, kc + x).convertShape(VectorOperators.B2F, F, 0);
                    FloatVector qv = FloatVector.fromArray(F, q, q0 + x);
                    a0 = qv.fma(kv, a0);
                    b0 = qv.fma(kw, b0);
                    qv = FloatVector.fromArray(F, q, q1 + x);
                    a1 = qv.fma(kv, a1);
                    b1 = qv.fma(kw, b1);
                    qv = FloatVector.fromArray(F, q, q2 + x);
                    a2 = qv.fma(kv, a2);
                    b2 = qv.fma(kw, b2);
                    qv = FloatVector.fromArray(F, q, q3 + x);
                    a3 = qv.fma(kv, a3);
                    b3 = qv.fma(kw, b3);
                }
                int s0 = t * KT + sCol + j;
                FloatVector sa = Reductions.sums(a0, a1, a2, a3);
                s[s0] = sa.lane(Reductions.SUM_A) * scale;
                s[s0 + KT] = sa.lane(Reductions.SUM_B) * scale;
                s[s0 + 2 * KT] = sa.lane(Reductions.SUM_C) * scale;
                s[s0 + 3 * KT] = sa.lane(Reductions.SUM_D) * scale;
                if (j + 1 < keys) {
                    int s1 = s0 + 1;
                    FloatVector sb = Reductions.sums(b0, b1, b2, b3);
                    s[s1] = sb.lane(Reductions.SUM_A) * scale;
                    s[s1 + KT] = sb.lane(Reductions.SUM_B) * scale;
                    s[s1 + 2 * KT] = sb.lane(Reductions.SUM_C) * scale;
                    s[s1 + 3 * KT] = sb.lane(Reductions.SUM_D) * scale;
                }
            }
        }
    }

    /**
     * {@link #scoresByRow} of FP8 codes with {@link ByteWidening#widenNormal}'s widening ({@code shift}, {@code
     * constants}): exact for rows of normal codes; a row holding other patterns gets a finite score that the caller
     * replaces (the widening turns those codes into normal floats, so no operand is ever a denormal). The loops of
     * {@link #scoresInt8}, with this widening: one loop with both widenings ran INT8 about a tenth slower.
     */
    private static void scoresInPairs(
            float[] q,
            int rows,
            int dp,
            int shift,
            int constants,
            byte[] k,
            int kOff,
            int dim,
            int keys,
            float scale,
            float[] s,
            int sCol) {
        // Scores.scoresByRow's loops over codes (rows dim apart), each key vector widened from its bytes, the
        // block's scale applied to each sum.
        // Two keys at a time: 8 independent accumulator chains, each loaded query vector feeding 2 FMAs, and the 4
        // rows' sums of a key reduced together (Reductions.sums, sum()'s bits); an odd last key scored twice and kept
        // once. (One key at a time waited on its 4 chains and 4 reductions: about 1.5 times slower from L1; 4 keys at
        // a time spilled. Pairs taken from a mask of the normal rows instead of in order ran 15 % slower.)
        int j = 0;
        int kb = kOff;
        for (; j < keys; j += 2, kb += 2 * dim) {
            int kc = j + 1 < keys ? kb + dim : kb; // an odd last key: scored twice, kept once
            for (int t = 0; t < rows; t += 4) {
                int q0 = t * dp;
                int q1 = q0 + dp;
                int q2 = q1 + dp;
                int q3 = q2 + dp;
                FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
                FloatVector b0 = a0, b1 = a0, b2 = a0, b3 = a0;
                for (int x = 0; x < dim; x += L) {
                    FloatVector kv = ByteWidening.widenNormal(
                            ByteVector.fromArray(ByteWidening.B, k, kb + x), false, shift, constants);
                    FloatVector kw = ByteWidening.widenNormal(
                            ByteVector.fromArray(ByteWidening.B, k, kc + x), false, shift, constants);
                    FloatVector qv = FloatVector.fromArray(F, q, q0 + x);
                    a0 = qv.fma(kv, a0);
                    b0 = qv.fma(kw, b0);
                    qv = FloatVector.fromArray(F, q, q1 + x);
                    a1 = qv.fma(kv, a1);
                    b1 = qv.fma(kw, b1);
                    qv = FloatVector.fromArray(F, q, q2 + x);
                    a2 = qv.fma(kv, a2);
                    b2 = qv.fma(kw, b2);
                    qv = FloatVector.fromArray(F, q, q3 + x);
                    a3 = qv.fma(kv, a3);
                    b3 = qv.fma(kw, b3);
                }
                int s0 = t * KT + sCol + j;
                FloatVector sa = Reductions.sums(a0, a1, a2, a3);
                s[s0] = sa.lane(Reductions.SUM_A) * scale;
                s[s0 + KT] = sa.lane(Reductions.SUM_B) * scale;
                s[s0 + 2 * KT] = sa.lane(Reductions.SUM_C) * scale;
                s[s0 + 3 * KT] = sa.lane(Reductions.SUM_D) * scale;
                if (j + 1 < keys) {
                    int s1 = s0 + 1;
                    FloatVector sb = Reductions.sums(b0, b1, b2, b3);
                    s[s1] = sb.lane(Reductions.SUM_A) * scale;
                    s[s1 + KT] = sb.lane(Reductions.SUM_B) * scale;
                    s[s1 + 2 * KT] = sb.lane(Reductions.SUM_C) * scale;
                    s[s1 + 3 * KT] = sb.lane(Reductions.SUM_D) * scale;
                }
            }
        }
    }

    /**
     * {@link #scoresByRow} of the keys whose bit is set in {@code keys}, FP8 rows holding zero, subnormal, NaN or
     * infinity patterns: the full widening, one key at a time (with this widening twice in the two-key loop, C2
     * reached its inlining node limit, left Reductions.sums and vector operations out of line, and the loop ran 5
     * times slower).
     */
    private static void scoresOneByOne(
            float[] q,
            int rows,
            int dp,
            QuantizedKv.Format format,
            byte[] k,
            int kOff,
            int dim,
            long keys,
            float scale,
            float[] s,
            int sCol) {
        int end = 64 - Long.numberOfLeadingZeros(keys);
        for (int j = 0, kb = kOff; j < end; j++, kb += dim) { // in order, which ran faster than bit by bit
            if ((keys >>> j & 1) == 0) {
                continue;
            }
            for (int t = 0; t < rows; t += 4) {
                int q0 = t * dp;
                int q1 = q0 + dp;
                int q2 = q1 + dp;
                int q3 = q2 + dp;
                FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
                for (int x = 0; x < dim; x += L) {
                    FloatVector kv = ByteWidening.widen(format, ByteVector.fromArray(ByteWidening.B, k, kb + x), 0);
                    a0 = FloatVector.fromArray(F, q, q0 + x).fma(kv, a0);
                    a1 = FloatVector.fromArray(F, q, q1 + x).fma(kv, a1);
                    a2 = FloatVector.fromArray(F, q, q2 + x).fma(kv, a2);
                    a3 = FloatVector.fromArray(F, q, q3 + x).fma(kv, a3);
                }
                int s0 = t * KT + sCol + j;
                FloatVector sums = Reductions.sums(a0, a1, a2, a3);
                s[s0] = sums.lane(Reductions.SUM_A) * scale;
                s[s0 + KT] = sums.lane(Reductions.SUM_B) * scale;
                s[s0 + 2 * KT] = sums.lane(Reductions.SUM_C) * scale;
                s[s0 + 3 * KT] = sums.lane(Reductions.SUM_D) * scale;
            }
        }
    }

    /**
     * {@code o[t] = alpha[t] o[t] + sum_j (p[t * KT + pCol + j] * scale) decode(v[vOff + j * dim ..])} over the
     * first {@code dim} floats of each output row ({@code dvp} apart) for {@code t < rows} (a multiple of 4),
     * {@code j < keys}, {@code pCol + keys <= KT} (at most 64); {@code dim} a multiple of the lanes. The probabilities
     * {@code p} of those rows and keys are left multiplied by {@code scale}. {@code abnormal} as for the scores.
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
            long abnormal,
            int dvp,
            float[] o,
            float[] alpha) {
        // The scale is folded into the probabilities once, in place (the tile's probabilities are not read again).
        for (int t = 0; t < rows; t++) {
            for (int j = t * KT + pCol, end = j + keys; j < end; j++) {
                p[j] *= scale;
            }
        }
        boolean int8 = format == QuantizedKv.Format.INT8;
        abnormal = int8 ? 0 : abnormal & firstBits(keys);
        int shift = ByteWidening.normalShift(format);
        int constants = ByteWidening.normalConstants(format);
        if (abnormal == 0) {
            accumulateShort(p, rows, 0, keys, pCol, int8, shift, constants, v, vOff, dim, dvp, o, alpha);
        } else if (mostlyAbnormal(abnormal, keys)) {
            accumulateFull(p, rows, 0, keys, pCol, format, v, vOff, dim, dvp, o, alpha);
        } else {
            // Segments of one kind in key order: o is stored and reloaded between them, exactly, so the sums are the
            // ones a single pass would make; only the first applies alpha.
            float[] rescale = alpha;
            for (int j = 0; j < keys; ) {
                long rest = abnormal >>> j;
                boolean full = (rest & 1) != 0;
                int end = Math.min(keys, j + Long.numberOfTrailingZeros(full ? ~rest : rest));
                if (full) {
                    accumulateFull(p, rows, j, end, pCol, format, v, vOff, dim, dvp, o, rescale);
                } else {
                    accumulateShort(p, rows, j, end, pCol, int8, shift, constants, v, vOff, dim, dvp, o, rescale);
                }
                rescale = null;
                j = end;
            }
        }
    }

    /**
     * {@link #accumulate}'s sums over keys {@code [from, to)}, the scale already in {@code p}, for INT8 codes or FP8
     * codes all normal ({@link ByteWidening#widenNormal}); a null {@code alpha} leaves the rows as they are.
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
     * {@link #accumulate}'s sums over keys {@code [from, to)}, the scale already in {@code p}, FP8 codes of any pattern ({@link ByteWidening#widen}); a null
     * {@code alpha} leaves the rows as they are.
     */
    private static void accumulateFull(
            float[] p,
            int rows,
            int from,
            int to,
            int pCol,
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
                    FloatVector v0 = ByteWidening.widen(format, ByteVector.fromArray(ByteWidening.B, v, vb), 0);
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
}
