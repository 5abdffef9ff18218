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
     * {@code s[t * KT + sCol + j] = scale * sum_x q[t * dp + x] decode(k[kOff + j * dim + x])} for {@code t <
     * rows} (a multiple of 4), {@code j < keys}; {@code dim} a multiple of the lanes, {@code <= dp}.
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
            float[] s,
            int sCol) {
        if (format == QuantizedKv.Format.INT8) {
            scoresByRowInt8(q, rows, dp, k, kOff, dim, keys, scale, s, sCol);
        } else {
            scoresByRowFp8(q, rows, dp, format, k, kOff, dim, keys, scale, s, sCol);
        }
    }

    /** {@link #scoresByRow} of INT8 codes. */
    private static void scoresByRowInt8(
            float[] q, int rows, int dp, byte[] k, int kOff, int dim, int keys, float scale, float[] s, int sCol) {
        // Scores.scoresByRow's loops over codes (rows dim apart), each key vector converted from its bytes, the
        // block's scale applied to each sum.
        // Two keys at a time: 8 independent accumulator chains, each loaded query vector feeding 2 FMAs, and the 4
        // rows' sums of a key reduced together (Reductions.sums, sum()'s bits); an odd last key scored twice and kept
        // once. (One key at a
        // time waited on its 4 chains and 4 reductions: about 1.5 times slower from L1; 4 keys at a time spilled.)
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
                    FloatVector sb = Reductions.sums(b0, b1, b2, b3);
                    s[s0 + 1] = sb.lane(Reductions.SUM_A) * scale;
                    s[s0 + 1 + KT] = sb.lane(Reductions.SUM_B) * scale;
                    s[s0 + 1 + 2 * KT] = sb.lane(Reductions.SUM_C) * scale;
                    s[s0 + 1 + 3 * KT] = sb.lane(Reductions.SUM_D) * scale;
                }
            }
        }
    }

    /** {@link #scoresByRow} of FP8 codes. */
    private static void scoresByRowFp8(
            float[] q,
            int rows,
            int dp,
            QuantizedKv.Format format,
            byte[] k,
            int kOff,
            int dim,
            int keys,
            float scale,
            float[] s,
            int sCol) {
        // One key at a time: the INT8 kernel's two-key loop with the FP8 widening twice in it ran 5 times slower, as C2
        // reached its inlining node limit and left Reductions.sums and vector operations out of line.
        for (int j = 0, kb = kOff; j < keys; j++, kb += dim) {
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
     * {@code j < keys}; {@code dim} a multiple of the lanes. The probabilities {@code p} of those rows and keys
     * are left multiplied by {@code scale}.
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
            int dvp,
            float[] o,
            float[] alpha) {
        // The scale is folded into the probabilities once, in place (the tile's probabilities are not read again).
        for (int t = 0; t < rows; t++) {
            for (int j = t * KT + pCol, end = j + keys; j < end; j++) {
                p[j] *= scale;
            }
        }
        for (int t = 0; t < rows; t += 4) {
            int p0 = t * KT + pCol;
            int p1 = p0 + KT;
            int p2 = p1 + KT;
            int p3 = p2 + KT;
            int o0 = t * dvp;
            int o1 = o0 + dvp;
            int o2 = o1 + dvp;
            int o3 = o2 + dvp;
            float al0 = alpha[t], al1 = alpha[t + 1], al2 = alpha[t + 2], al3 = alpha[t + 3];
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
                for (int j = 0, vb = vOff + c; j < keys; j++, vb += dim) {
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
                for (int j = 0, vb = vOff + c; j < keys; j++, vb += dim) {
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
