package dev.aule.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * SIMD tile arithmetic on the platform's preferred vector width.
 *
 * <p>Tile sizes: a key block is 4 vectors wide (64 keys with 512-bit vectors), so both products
 * run as 4 query rows x 4 vectors = 16 accumulators, which with 4 operand vectors and a broadcast
 * fits the 32 vector registers of AVX-512 without spilling; 4 rows amortise each loaded key or
 * value vector over 4 FMAs. A 256 x 64 x 128 tile set (q, kt, v, s, o) is about 400 KiB, within L2.
 */
final class VectorTileMath implements TileMath {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> I = F.withLanes(int.class); // same shape, as many lanes
    /** As many 16-bit lanes as F has floats (half its width): one load widens to one float vector. */
    private static final VectorSpecies<Short> H = VectorSpecies.of(short.class, VectorShape.forBitSize(F.vectorBitSize() / 2));
    private static final int L = F.length();
    private static final int KT = 4 * L;
    private static final long LANE_BYTES = (long) L * Float.BYTES;
    /**
     * 256-bit vectors (AVX2): 16 registers cannot hold a 4 x 4 block of accumulators with its 4 operand
     * vectors and a broadcast (21), so the products use 4 x 2 blocks there: 8 accumulators, 2 operands and a
     * broadcast (alone on a 256 x 128 by 128 x 32 product: 79 to 88 GFLOP/s against 48 to 51).
     */
    private static final boolean NARROW = L == 8;
    private static final float[] ONES = {1f, 1f, 1f, 1f};
    /** Tensors store floats in native order. */
    private static final ByteOrder NATIVE = ByteOrder.nativeOrder();
    private static final ValueLayout.OfShort HALF = ValueLayout.JAVA_SHORT_UNALIGNED;

    // exp(x) = 2^n * e^r with n = round(x / ln 2) and |r| <= ln(2) / 2.
    private static final float LOG2E = 1.44269504f;
    private static final float LN2_HI = 0.693145752f; // ln 2 split so n * LN2_HI is exact
    private static final float LN2_LO = 1.42860677e-6f;
    private static final float ROUNDER = 12582912f;    // 1.5 * 2^23: adding it rounds to an integer
    private static final int ROUNDER_BITS = Float.floatToRawIntBits(ROUNDER);
    private static final float EXP_MIN = -87.0f;       // below: 0 (avoids subnormal scale factors)
    private static final float EXP_MAX = 88.0f;
    private static final FloatVector IOTA = iota(); // 0, 1, ..., L-1
    private static final List<VectorShuffle<Float>> HALVING_ROTATIONS = halvingRotations();
    // Lane i takes lane i + n (mod L): sum()'s halving steps for up to 16 lanes.
    private static final VectorShuffle<Float> ROTATE_8 = VectorShuffle.iota(F, 8 % L, 1, true);
    private static final VectorShuffle<Float> ROTATE_4 = VectorShuffle.iota(F, 4 % L, 1, true);
    private static final VectorShuffle<Float> ROTATE_2 = VectorShuffle.iota(F, 2 % L, 1, true);
    private static final VectorShuffle<Float> ROTATE_1 = VectorShuffle.iota(F, 1 % L, 1, true);
    private static final FloatVector NEG_LN2_HI = FloatVector.broadcast(F, -LN2_HI);
    private static final FloatVector NEG_LN2_LO = FloatVector.broadcast(F, -LN2_LO);
    private static final FloatVector ONE = FloatVector.broadcast(F, 1f);
    private static final FloatVector C2 = FloatVector.broadcast(F, 1f / 2);
    private static final FloatVector C3 = FloatVector.broadcast(F, 1f / 6);
    private static final FloatVector C4 = FloatVector.broadcast(F, 1f / 24);
    private static final FloatVector C5 = FloatVector.broadcast(F, 1f / 120);
    private static final FloatVector C6 = FloatVector.broadcast(F, 1f / 720);
    // Taylor coefficients of tanh: y - y^3/3 + 2y^5/15 - 17y^7/315 + ...
    private static final FloatVector T3 = FloatVector.broadcast(F, -1f / 3);
    private static final FloatVector T5 = FloatVector.broadcast(F, 2f / 15);
    private static final FloatVector T7 = FloatVector.broadcast(F, -17f / 315);
    private static final FloatVector T9 = FloatVector.broadcast(F, 62f / 2835);
    private static final FloatVector T11 = FloatVector.broadcast(F, -1382f / 155925);
    private static final FloatVector T13 = FloatVector.broadcast(F, 21844f / 6081075);

    @Override
    public int lanes() {
        return L;
    }

    @Override
    public int keyTile() {
        return KT;
    }

    @Override
    public String description() {
        return F.vectorBitSize() + "-bit Vector API (" + L + " floats)";
    }

    @Override
    public void scoresByRow(float[] q, int rows, int dp, float[] k, int kOff, int kStride, int keys, float[] s,
                            int sCol) {
        // Keys outside, groups of 4 query rows inside: a key row (at most 2 KiB) is loaded from memory
        // once and stays in L1 for every group, and the query tile (at most 32 x 512 floats) stays
        // in L1/L2. 4 rows share each loaded key vector; one horizontal sum per (row, key).
        for (int j = 0, kb = kOff; j < keys; j++, kb += kStride) {
            for (int t = 0; t < rows; t += 4) {
                int q0 = t * dp;
                int q1 = q0 + dp;
                int q2 = q1 + dp;
                int q3 = q2 + dp;
                FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
                for (int x = 0; x < dp; x += L) {
                    FloatVector kv = FloatVector.fromArray(F, k, kb + x);
                    a0 = FloatVector.fromArray(F, q, q0 + x).fma(kv, a0);
                    a1 = FloatVector.fromArray(F, q, q1 + x).fma(kv, a1);
                    a2 = FloatVector.fromArray(F, q, q2 + x).fma(kv, a2);
                    a3 = FloatVector.fromArray(F, q, q3 + x).fma(kv, a3);
                }
                int s0 = t * KT + sCol + j;
                s[s0] = sum(a0);
                s[s0 + KT] = sum(a1);
                s[s0 + 2 * KT] = sum(a2);
                s[s0 + 3 * KT] = sum(a3);
            }
        }
    }

    @Override
    public void scoresByRow(float[] q, int rows, int dp, MemorySegment k, long kOff, long kStride, int keys,
                            float[] s, int sCol) {
        // As the array version: one key row streamed from memory, shared by every group of 4 query rows.
        long kb = kOff;
        for (int j = 0; j < keys; j++, kb += kStride) {
            for (int t = 0; t < rows; t += 4) {
                int q0 = t * dp;
                int q1 = q0 + dp;
                int q2 = q1 + dp;
                int q3 = q2 + dp;
                FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
                for (int x = 0; x < dp; x += L) {
                    FloatVector kv = FloatVector.fromMemorySegment(F, k, kb + (long) x * Float.BYTES, NATIVE);
                    a0 = FloatVector.fromArray(F, q, q0 + x).fma(kv, a0);
                    a1 = FloatVector.fromArray(F, q, q1 + x).fma(kv, a1);
                    a2 = FloatVector.fromArray(F, q, q2 + x).fma(kv, a2);
                    a3 = FloatVector.fromArray(F, q, q3 + x).fma(kv, a3);
                }
                int s0 = t * KT + sCol + j;
                s[s0] = sum(a0);
                s[s0 + KT] = sum(a1);
                s[s0 + 2 * KT] = sum(a2);
                s[s0 + 3 * KT] = sum(a3);
            }
        }
    }

    @Override
    public void scoresByKey(float[] qT, int rows, int d, float[] k, int kOff, int kStride, int keys, float[] sT,
                            float[] s, int sCol) {
        // sT[j][c] = sum_x k[j][x] qT[x][c]: 8 keys x 2 vectors of query rows = 16 accumulators, fed per
        // x by 8 broadcast key elements and 2 query vectors (10 loads for 16 FMAs; the 8 key rows stream
        // side by side from memory). Leftover keys and an odd last vector of columns go one by one.
        int cols = queryColumns(rows);
        int j = 0;
        for (; j + 8 <= keys; j += 8) {
            int k0 = kOff + j * kStride;
            int c = 0;
            for (; c + 2 * L <= cols; c += 2 * L) {
                FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
                FloatVector b0 = a0, b1 = a0, b2 = a0, b3 = a0, b4 = a0, b5 = a0, b6 = a0, b7 = a0;
                for (int x = 0, qb = c; x < d; x++, qb += cols) {
                    FloatVector qa = FloatVector.fromArray(F, qT, qb);
                    FloatVector qc = FloatVector.fromArray(F, qT, qb + L);
                    int kx = k0 + x;
                    FloatVector e = FloatVector.broadcast(F, k[kx]);
                    a0 = qa.fma(e, a0);
                    b0 = qc.fma(e, b0);
                    e = FloatVector.broadcast(F, k[kx + kStride]);
                    a1 = qa.fma(e, a1);
                    b1 = qc.fma(e, b1);
                    e = FloatVector.broadcast(F, k[kx + 2 * kStride]);
                    a2 = qa.fma(e, a2);
                    b2 = qc.fma(e, b2);
                    e = FloatVector.broadcast(F, k[kx + 3 * kStride]);
                    a3 = qa.fma(e, a3);
                    b3 = qc.fma(e, b3);
                    e = FloatVector.broadcast(F, k[kx + 4 * kStride]);
                    a4 = qa.fma(e, a4);
                    b4 = qc.fma(e, b4);
                    e = FloatVector.broadcast(F, k[kx + 5 * kStride]);
                    a5 = qa.fma(e, a5);
                    b5 = qc.fma(e, b5);
                    e = FloatVector.broadcast(F, k[kx + 6 * kStride]);
                    a6 = qa.fma(e, a6);
                    b6 = qc.fma(e, b6);
                    e = FloatVector.broadcast(F, k[kx + 7 * kStride]);
                    a7 = qa.fma(e, a7);
                    b7 = qc.fma(e, b7);
                }
                int o = j * cols + c;
                a0.intoArray(sT, o);
                b0.intoArray(sT, o + L);
                a1.intoArray(sT, o + cols);
                b1.intoArray(sT, o + cols + L);
                a2.intoArray(sT, o + 2 * cols);
                b2.intoArray(sT, o + 2 * cols + L);
                a3.intoArray(sT, o + 3 * cols);
                b3.intoArray(sT, o + 3 * cols + L);
                a4.intoArray(sT, o + 4 * cols);
                b4.intoArray(sT, o + 4 * cols + L);
                a5.intoArray(sT, o + 5 * cols);
                b5.intoArray(sT, o + 5 * cols + L);
                a6.intoArray(sT, o + 6 * cols);
                b6.intoArray(sT, o + 6 * cols + L);
                a7.intoArray(sT, o + 7 * cols);
                b7.intoArray(sT, o + 7 * cols + L);
            }
            for (; c < cols; c += L) {
                for (int jj = j; jj < j + 8; jj++) {
                    scoresOneKey(qT, cols, c, d, k, kOff + jj * kStride, sT, jj * cols + c);
                }
            }
        }
        for (; j < keys; j++) {
            for (int c = 0; c < cols; c += L) {
                scoresOneKey(qT, cols, c, d, k, kOff + j * kStride, sT, j * cols + c);
            }
        }
        // Back to the row-major score tile the softmax works on.
        for (int jj = 0; jj < keys; jj++) {
            for (int t = 0, at = jj * cols; t < rows; t++, at++) {
                s[t * KT + sCol + jj] = sT[at];
            }
        }
    }

    /** {@code sT[at, at+L) = sum_x k[kb + x] qT[x][c, c+L)}: one key against one vector of query rows. */
    private static void scoresOneKey(float[] qT, int cols, int c, int d, float[] k, int kb, float[] sT, int at) {
        FloatVector acc = FloatVector.zero(F);
        for (int x = 0, qb = c; x < d; x++, qb += cols) {
            acc = FloatVector.fromArray(F, qT, qb).fma(FloatVector.broadcast(F, k[kb + x]), acc);
        }
        acc.intoArray(sT, at);
    }

    @Override
    public void widen(MemorySegment src, long srcOff, boolean bf16, float[] dst, int dstOff, int count) {
        // S2I sign-extends each 16-bit pattern into its int lane; both conversions mask or shift the
        // extension away. bfloat16 is the upper half of a binary32. binary16: the 15 magnitude bits
        // shifted into binary32's exponent and fraction, times 2^112 to rebias the exponent (exact, and
        // right for subnormals and zero too); an all-ones exponent (infinity, NaN) came out as 2^16 times
        // its fraction, so setting every exponent bit restores it, the fraction (NaN payload) kept.
        long at = srcOff;
        int i = 0;
        for (; i + L <= count; i += L, at += 2L * L) {
            IntVector h = (IntVector) ShortVector.fromMemorySegment(H, src, at, NATIVE)
                    .convertShape(VectorOperators.S2I, I, 0);
            FloatVector f;
            if (bf16) {
                f = h.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            } else {
                IntVector magnitude = h.and(0x7FFF);
                IntVector bits = magnitude.lanewise(VectorOperators.LSHL, 13).reinterpretAsFloats().mul(0x1p112f)
                        .reinterpretAsInts()
                        .lanewise(VectorOperators.OR, 0x7F800000, magnitude.compare(VectorOperators.GE, 0x7C00))
                        .or(h.and(0x8000).lanewise(VectorOperators.LSHL, 16));
                f = bits.reinterpretAsFloats();
            }
            f.intoArray(dst, dstOff + i);
        }
        for (; i < count; i++, at += 2) {
            dst[dstOff + i] = HalfRows.widen(src.get(HALF, at), bf16);
        }
    }

    @Override
    public void scale(float[] x, int off, int n, float factor) {
        int i = off;
        for (int end = off + F.loopBound(n); i < end; i += L) {
            FloatVector.fromArray(F, x, i).mul(factor).intoArray(x, i);
        }
        for (; i < off + n; i++) {
            x[i] *= factor;
        }
    }

    @Override
    public void softcap(float[] s, int off, int n, float cap) {
        float inverse = 1f / cap;
        for (int i = off; i < off + n; i += L) {
            tanh(FloatVector.fromArray(F, s, i).mul(inverse)).mul(cap).intoArray(s, i);
        }
    }

    @Override
    public void alibi(float[] s, int off, int n, float slope, float center) {
        FloatVector distance = FloatVector.broadcast(F, center).sub(IOTA);
        for (int i = off; i < off + n; i += L) {
            FloatVector.fromArray(F, s, i).sub(distance.abs().mul(slope)).intoArray(s, i);
            distance = distance.sub(L);
        }
    }

    @Override
    public float max(float[] s, int off, int n) {
        FloatVector max = FloatVector.broadcast(F, Float.NEGATIVE_INFINITY);
        for (int i = off; i < off + n; i += L) {
            max = max.max(FloatVector.fromArray(F, s, i));
        }
        return max.reduceLanes(VectorOperators.MAX);
    }

    @Override
    public float expSum(float[] s, int off, int n, float max) {
        FloatVector sum = FloatVector.zero(F);
        for (int i = off; i < off + n; i += L) {
            FloatVector e = exp(FloatVector.fromArray(F, s, i).sub(max));
            e.intoArray(s, i);
            sum = sum.add(e);
        }
        // sum(sum) written out: this method is inlined into FlashForward.run, where C2 runs out of
        // inlining budget, and a call to sum() left out of line would box its vector argument on
        // the heap for every score row. Same steps and order as sum().
        if (L > 16) {
            return sum(sum);
        }
        if (L >= 16) {
            sum = sum.add(sum.rearrange(ROTATE_8));
        }
        if (L >= 8) {
            sum = sum.add(sum.rearrange(ROTATE_4));
        }
        if (L >= 4) {
            sum = sum.add(sum.rearrange(ROTATE_2));
        }
        if (L >= 2) {
            sum = sum.add(sum.rearrange(ROTATE_1));
        }
        return sum.lane(0);
    }

    /**
     * The sum of the lanes in one fixed order, halving the vector each step. Not
     * {@code reduceLanes(ADD)}: its order is left to the implementation, and the interpreter's
     * and C2's differ, so the same call would change in the last bit once compiled. The steps are
     * written out with shuffles held in static final fields, which C2 sees as constants: fetched
     * from a list in a loop, the shuffles were not constant, {@code rearrange} and {@code add} fell
     * back to their Java implementations, and every score row allocated vectors on the heap.
     */
    static float sum(FloatVector v) {
        if (L > 16) {
            for (int i = 0; i < HALVING_ROTATIONS.size(); i++) {
                v = v.add(v.rearrange(HALVING_ROTATIONS.get(i)));
            }
            return v.lane(0);
        }
        if (L >= 16) {
            v = v.add(v.rearrange(ROTATE_8));
        }
        if (L >= 8) {
            v = v.add(v.rearrange(ROTATE_4));
        }
        if (L >= 4) {
            v = v.add(v.rearrange(ROTATE_2));
        }
        if (L >= 2) {
            v = v.add(v.rearrange(ROTATE_1));
        }
        return v.lane(0);
    }

    /** Rotations by L/2, L/4, ..., 1 lanes, for vectors wider than 16 lanes. */
    private static List<VectorShuffle<Float>> halvingRotations() {
        List<VectorShuffle<Float>> rotations = new ArrayList<>();
        for (int half = L / 2; half > 0; half /= 2) {
            rotations.add(VectorShuffle.iota(F, half, 1, true));
        }
        return List.copyOf(rotations);
    }

    @Override
    public void accumulate(float[] p, int rows, int keys, int pCol, float[] v, int vOff, int vStride, int dvp,
                           float[] o, float[] alpha) {
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
            // A lone group of 4 rows (decode) streams each value row from memory once per pass: it keeps the
            // wide block's 4 passes even where that spills; with more rows the values come from L1.
            if (NARROW && rows > 4) {
                c = accumulatePairs(p, p0, keys, v, vOff, vStride, dvp, o, o0, dvp, alpha, t);
            }
            for (; c + 4 * L <= dvp; c += 4 * L) {
                FloatVector a00 = FloatVector.fromArray(F, o, o0 + c).mul(al0);
                FloatVector a01 = FloatVector.fromArray(F, o, o0 + c + L).mul(al0);
                FloatVector a02 = FloatVector.fromArray(F, o, o0 + c + 2 * L).mul(al0);
                FloatVector a03 = FloatVector.fromArray(F, o, o0 + c + 3 * L).mul(al0);
                FloatVector a10 = FloatVector.fromArray(F, o, o1 + c).mul(al1);
                FloatVector a11 = FloatVector.fromArray(F, o, o1 + c + L).mul(al1);
                FloatVector a12 = FloatVector.fromArray(F, o, o1 + c + 2 * L).mul(al1);
                FloatVector a13 = FloatVector.fromArray(F, o, o1 + c + 3 * L).mul(al1);
                FloatVector a20 = FloatVector.fromArray(F, o, o2 + c).mul(al2);
                FloatVector a21 = FloatVector.fromArray(F, o, o2 + c + L).mul(al2);
                FloatVector a22 = FloatVector.fromArray(F, o, o2 + c + 2 * L).mul(al2);
                FloatVector a23 = FloatVector.fromArray(F, o, o2 + c + 3 * L).mul(al2);
                FloatVector a30 = FloatVector.fromArray(F, o, o3 + c).mul(al3);
                FloatVector a31 = FloatVector.fromArray(F, o, o3 + c + L).mul(al3);
                FloatVector a32 = FloatVector.fromArray(F, o, o3 + c + 2 * L).mul(al3);
                FloatVector a33 = FloatVector.fromArray(F, o, o3 + c + 3 * L).mul(al3);
                for (int j = 0, vb = vOff + c; j < keys; j++, vb += vStride) {
                    FloatVector v0 = FloatVector.fromArray(F, v, vb);
                    FloatVector v1 = FloatVector.fromArray(F, v, vb + L);
                    FloatVector v2 = FloatVector.fromArray(F, v, vb + 2 * L);
                    FloatVector v3 = FloatVector.fromArray(F, v, vb + 3 * L);
                    FloatVector b = FloatVector.broadcast(F, p[p0 + j]);
                    a00 = v0.fma(b, a00);
                    a01 = v1.fma(b, a01);
                    a02 = v2.fma(b, a02);
                    a03 = v3.fma(b, a03);
                    b = FloatVector.broadcast(F, p[p1 + j]);
                    a10 = v0.fma(b, a10);
                    a11 = v1.fma(b, a11);
                    a12 = v2.fma(b, a12);
                    a13 = v3.fma(b, a13);
                    b = FloatVector.broadcast(F, p[p2 + j]);
                    a20 = v0.fma(b, a20);
                    a21 = v1.fma(b, a21);
                    a22 = v2.fma(b, a22);
                    a23 = v3.fma(b, a23);
                    b = FloatVector.broadcast(F, p[p3 + j]);
                    a30 = v0.fma(b, a30);
                    a31 = v1.fma(b, a31);
                    a32 = v2.fma(b, a32);
                    a33 = v3.fma(b, a33);
                }
                a00.intoArray(o, o0 + c);
                a01.intoArray(o, o0 + c + L);
                a02.intoArray(o, o0 + c + 2 * L);
                a03.intoArray(o, o0 + c + 3 * L);
                a10.intoArray(o, o1 + c);
                a11.intoArray(o, o1 + c + L);
                a12.intoArray(o, o1 + c + 2 * L);
                a13.intoArray(o, o1 + c + 3 * L);
                a20.intoArray(o, o2 + c);
                a21.intoArray(o, o2 + c + L);
                a22.intoArray(o, o2 + c + 2 * L);
                a23.intoArray(o, o2 + c + 3 * L);
                a30.intoArray(o, o3 + c);
                a31.intoArray(o, o3 + c + L);
                a32.intoArray(o, o3 + c + 2 * L);
                a33.intoArray(o, o3 + c + 3 * L);
            }
            // Remaining value columns (dvp not a multiple of 4 vectors): one vector at a time.
            for (; c < dvp; c += L) {
                FloatVector a0 = FloatVector.fromArray(F, o, o0 + c).mul(al0);
                FloatVector a1 = FloatVector.fromArray(F, o, o1 + c).mul(al1);
                FloatVector a2 = FloatVector.fromArray(F, o, o2 + c).mul(al2);
                FloatVector a3 = FloatVector.fromArray(F, o, o3 + c).mul(al3);
                for (int j = 0, vb = vOff + c; j < keys; j++, vb += vStride) {
                    FloatVector v0 = FloatVector.fromArray(F, v, vb);
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
     * The 4 x 2 block of {@link #accumulate} (and, with alphas of 1, of {@link #multiplyAdd}) for rows
     * {@code t..t+3}: probabilities from {@code p0} ({@link #KT} apart), output rows from {@code o0}
     * ({@code oStride} apart), over every pair of value vectors within {@code dvp}; returns the first column it
     * did not do.
     */
    private static int accumulatePairs(float[] p, int p0, int keys, float[] v, int vOff, int vStride, int dvp,
                                       float[] o, int o0, int oStride, float[] alpha, int t) {
        int p1 = p0 + KT;
        int p2 = p1 + KT;
        int p3 = p2 + KT;
        int o1 = o0 + oStride;
        int o2 = o1 + oStride;
        int o3 = o2 + oStride;
        float al0 = alpha[t], al1 = alpha[t + 1], al2 = alpha[t + 2], al3 = alpha[t + 3];
        int c = 0;
        for (; c + 2 * L <= dvp; c += 2 * L) {
            FloatVector a00 = FloatVector.fromArray(F, o, o0 + c).mul(al0);
            FloatVector a01 = FloatVector.fromArray(F, o, o0 + c + L).mul(al0);
            FloatVector a10 = FloatVector.fromArray(F, o, o1 + c).mul(al1);
            FloatVector a11 = FloatVector.fromArray(F, o, o1 + c + L).mul(al1);
            FloatVector a20 = FloatVector.fromArray(F, o, o2 + c).mul(al2);
            FloatVector a21 = FloatVector.fromArray(F, o, o2 + c + L).mul(al2);
            FloatVector a30 = FloatVector.fromArray(F, o, o3 + c).mul(al3);
            FloatVector a31 = FloatVector.fromArray(F, o, o3 + c + L).mul(al3);
            for (int j = 0, vb = vOff + c; j < keys; j++, vb += vStride) {
                FloatVector v0 = FloatVector.fromArray(F, v, vb);
                FloatVector v1 = FloatVector.fromArray(F, v, vb + L);
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
        return c;
    }

    @Override
    public void accumulate(float[] p, int rows, int keys, int pCol, MemorySegment v, long vOff, long vStride,
                           int dvp, float[] o, float[] alpha) {
        // As the array version, value rows loaded from the segment.
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
            for (; c + 4 * L <= dvp; c += 4 * L) {
                FloatVector a00 = FloatVector.fromArray(F, o, o0 + c).mul(al0);
                FloatVector a01 = FloatVector.fromArray(F, o, o0 + c + L).mul(al0);
                FloatVector a02 = FloatVector.fromArray(F, o, o0 + c + 2 * L).mul(al0);
                FloatVector a03 = FloatVector.fromArray(F, o, o0 + c + 3 * L).mul(al0);
                FloatVector a10 = FloatVector.fromArray(F, o, o1 + c).mul(al1);
                FloatVector a11 = FloatVector.fromArray(F, o, o1 + c + L).mul(al1);
                FloatVector a12 = FloatVector.fromArray(F, o, o1 + c + 2 * L).mul(al1);
                FloatVector a13 = FloatVector.fromArray(F, o, o1 + c + 3 * L).mul(al1);
                FloatVector a20 = FloatVector.fromArray(F, o, o2 + c).mul(al2);
                FloatVector a21 = FloatVector.fromArray(F, o, o2 + c + L).mul(al2);
                FloatVector a22 = FloatVector.fromArray(F, o, o2 + c + 2 * L).mul(al2);
                FloatVector a23 = FloatVector.fromArray(F, o, o2 + c + 3 * L).mul(al2);
                FloatVector a30 = FloatVector.fromArray(F, o, o3 + c).mul(al3);
                FloatVector a31 = FloatVector.fromArray(F, o, o3 + c + L).mul(al3);
                FloatVector a32 = FloatVector.fromArray(F, o, o3 + c + 2 * L).mul(al3);
                FloatVector a33 = FloatVector.fromArray(F, o, o3 + c + 3 * L).mul(al3);
                long vb = vOff + (long) c * Float.BYTES;
                for (int j = 0; j < keys; j++, vb += vStride) {
                    FloatVector v0 = FloatVector.fromMemorySegment(F, v, vb, NATIVE);
                    FloatVector v1 = FloatVector.fromMemorySegment(F, v, vb + LANE_BYTES, NATIVE);
                    FloatVector v2 = FloatVector.fromMemorySegment(F, v, vb + 2 * LANE_BYTES, NATIVE);
                    FloatVector v3 = FloatVector.fromMemorySegment(F, v, vb + 3 * LANE_BYTES, NATIVE);
                    FloatVector b = FloatVector.broadcast(F, p[p0 + j]);
                    a00 = v0.fma(b, a00);
                    a01 = v1.fma(b, a01);
                    a02 = v2.fma(b, a02);
                    a03 = v3.fma(b, a03);
                    b = FloatVector.broadcast(F, p[p1 + j]);
                    a10 = v0.fma(b, a10);
                    a11 = v1.fma(b, a11);
                    a12 = v2.fma(b, a12);
                    a13 = v3.fma(b, a13);
                    b = FloatVector.broadcast(F, p[p2 + j]);
                    a20 = v0.fma(b, a20);
                    a21 = v1.fma(b, a21);
                    a22 = v2.fma(b, a22);
                    a23 = v3.fma(b, a23);
                    b = FloatVector.broadcast(F, p[p3 + j]);
                    a30 = v0.fma(b, a30);
                    a31 = v1.fma(b, a31);
                    a32 = v2.fma(b, a32);
                    a33 = v3.fma(b, a33);
                }
                a00.intoArray(o, o0 + c);
                a01.intoArray(o, o0 + c + L);
                a02.intoArray(o, o0 + c + 2 * L);
                a03.intoArray(o, o0 + c + 3 * L);
                a10.intoArray(o, o1 + c);
                a11.intoArray(o, o1 + c + L);
                a12.intoArray(o, o1 + c + 2 * L);
                a13.intoArray(o, o1 + c + 3 * L);
                a20.intoArray(o, o2 + c);
                a21.intoArray(o, o2 + c + L);
                a22.intoArray(o, o2 + c + 2 * L);
                a23.intoArray(o, o2 + c + 3 * L);
                a30.intoArray(o, o3 + c);
                a31.intoArray(o, o3 + c + L);
                a32.intoArray(o, o3 + c + 2 * L);
                a33.intoArray(o, o3 + c + 3 * L);
            }
            // Remaining value columns (dvp not a multiple of 4 vectors): one vector at a time.
            for (; c < dvp; c += L) {
                FloatVector a0 = FloatVector.fromArray(F, o, o0 + c).mul(al0);
                FloatVector a1 = FloatVector.fromArray(F, o, o1 + c).mul(al1);
                FloatVector a2 = FloatVector.fromArray(F, o, o2 + c).mul(al2);
                FloatVector a3 = FloatVector.fromArray(F, o, o3 + c).mul(al3);
                long vb = vOff + (long) c * Float.BYTES;
                for (int j = 0; j < keys; j++, vb += vStride) {
                    FloatVector v0 = FloatVector.fromMemorySegment(F, v, vb, NATIVE);
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

    // The general products: multiply serves the forward's scores and the backward's transposed
    // scores and dOut . v; multiplyAdd the backward's gradient products. Same 4 rows x 4 vectors
    // register block as accumulate (16 accumulators, 4 operand vectors and a broadcast in the 32
    // AVX-512 registers; 4 x 2 on AVX2, see NARROW); a backward tile is KT x KT (64 x 64 with 512-bit
    // vectors), so one call streams at most a KT x 128 operand from L1/L2 per 4 rows.

    @Override
    public void multiply(float[] a, int rows, int inner, float[] b, int bOff, float[] c) {
        if (NARROW) {
            multiplyPairs(a, rows, inner, b, bOff, c);
            return;
        }
        for (int t = 0; t < rows; t += 4) {
            int a0 = t * inner;
            int a1 = a0 + inner;
            int a2 = a1 + inner;
            int a3 = a2 + inner;
            FloatVector c00 = FloatVector.zero(F), c01 = c00, c02 = c00, c03 = c00;
            FloatVector c10 = c00, c11 = c00, c12 = c00, c13 = c00;
            FloatVector c20 = c00, c21 = c00, c22 = c00, c23 = c00;
            FloatVector c30 = c00, c31 = c00, c32 = c00, c33 = c00;
            for (int x = 0, bb = bOff; x < inner; x++, bb += KT) {
                FloatVector b0 = FloatVector.fromArray(F, b, bb);
                FloatVector b1 = FloatVector.fromArray(F, b, bb + L);
                FloatVector b2 = FloatVector.fromArray(F, b, bb + 2 * L);
                FloatVector b3 = FloatVector.fromArray(F, b, bb + 3 * L);
                FloatVector e = FloatVector.broadcast(F, a[a0 + x]);
                c00 = b0.fma(e, c00);
                c01 = b1.fma(e, c01);
                c02 = b2.fma(e, c02);
                c03 = b3.fma(e, c03);
                e = FloatVector.broadcast(F, a[a1 + x]);
                c10 = b0.fma(e, c10);
                c11 = b1.fma(e, c11);
                c12 = b2.fma(e, c12);
                c13 = b3.fma(e, c13);
                e = FloatVector.broadcast(F, a[a2 + x]);
                c20 = b0.fma(e, c20);
                c21 = b1.fma(e, c21);
                c22 = b2.fma(e, c22);
                c23 = b3.fma(e, c23);
                e = FloatVector.broadcast(F, a[a3 + x]);
                c30 = b0.fma(e, c30);
                c31 = b1.fma(e, c31);
                c32 = b2.fma(e, c32);
                c33 = b3.fma(e, c33);
            }
            int o = t * KT;
            c00.intoArray(c, o);
            c01.intoArray(c, o + L);
            c02.intoArray(c, o + 2 * L);
            c03.intoArray(c, o + 3 * L);
            o += KT;
            c10.intoArray(c, o);
            c11.intoArray(c, o + L);
            c12.intoArray(c, o + 2 * L);
            c13.intoArray(c, o + 3 * L);
            o += KT;
            c20.intoArray(c, o);
            c21.intoArray(c, o + L);
            c22.intoArray(c, o + 2 * L);
            c23.intoArray(c, o + 3 * L);
            o += KT;
            c30.intoArray(c, o);
            c31.intoArray(c, o + L);
            c32.intoArray(c, o + 2 * L);
            c33.intoArray(c, o + 3 * L);
        }
    }

    /** {@link #multiply} in 4 x 2 blocks (see {@link #NARROW}): each 4-row block in two passes over half the columns. */
    private static void multiplyPairs(float[] a, int rows, int inner, float[] b, int bOff, float[] c) {
        for (int t = 0; t < rows; t += 4) {
            int a0 = t * inner;
            int a1 = a0 + inner;
            int a2 = a1 + inner;
            int a3 = a2 + inner;
            for (int h = 0; h < KT; h += 2 * L) {
                FloatVector c00 = FloatVector.zero(F), c01 = c00, c10 = c00, c11 = c00;
                FloatVector c20 = c00, c21 = c00, c30 = c00, c31 = c00;
                for (int x = 0, bb = bOff + h; x < inner; x++, bb += KT) {
                    FloatVector b0 = FloatVector.fromArray(F, b, bb);
                    FloatVector b1 = FloatVector.fromArray(F, b, bb + L);
                    FloatVector e = FloatVector.broadcast(F, a[a0 + x]);
                    c00 = b0.fma(e, c00);
                    c01 = b1.fma(e, c01);
                    e = FloatVector.broadcast(F, a[a1 + x]);
                    c10 = b0.fma(e, c10);
                    c11 = b1.fma(e, c11);
                    e = FloatVector.broadcast(F, a[a2 + x]);
                    c20 = b0.fma(e, c20);
                    c21 = b1.fma(e, c21);
                    e = FloatVector.broadcast(F, a[a3 + x]);
                    c30 = b0.fma(e, c30);
                    c31 = b1.fma(e, c31);
                }
                int o = t * KT + h;
                c00.intoArray(c, o);
                c01.intoArray(c, o + L);
                c10.intoArray(c, o + KT);
                c11.intoArray(c, o + KT + L);
                c20.intoArray(c, o + 2 * KT);
                c21.intoArray(c, o + 2 * KT + L);
                c30.intoArray(c, o + 3 * KT);
                c31.intoArray(c, o + 3 * KT + L);
            }
        }
    }

    @Override
    public void multiplyAdd(float[] a, int rows, int inner, float[] b, int bOff, int width, float[] c, int cOff) {
        for (int t = 0; t < rows; t += 4) {
            int a0 = t * KT;
            int a1 = a0 + KT;
            int a2 = a1 + KT;
            int a3 = a2 + KT;
            int o0 = cOff + t * width;
            int o1 = o0 + width;
            int o2 = o1 + width;
            int o3 = o2 + width;
            // c += a b is accumulate's block with alphas of 1 (exact): a's rows are KT apart like p's.
            int y = NARROW ? accumulatePairs(a, a0, inner, b, bOff, width, width, c, o0, width, ONES, 0) : 0;
            for (; y + 4 * L <= width; y += 4 * L) {
                FloatVector c00 = FloatVector.fromArray(F, c, o0 + y);
                FloatVector c01 = FloatVector.fromArray(F, c, o0 + y + L);
                FloatVector c02 = FloatVector.fromArray(F, c, o0 + y + 2 * L);
                FloatVector c03 = FloatVector.fromArray(F, c, o0 + y + 3 * L);
                FloatVector c10 = FloatVector.fromArray(F, c, o1 + y);
                FloatVector c11 = FloatVector.fromArray(F, c, o1 + y + L);
                FloatVector c12 = FloatVector.fromArray(F, c, o1 + y + 2 * L);
                FloatVector c13 = FloatVector.fromArray(F, c, o1 + y + 3 * L);
                FloatVector c20 = FloatVector.fromArray(F, c, o2 + y);
                FloatVector c21 = FloatVector.fromArray(F, c, o2 + y + L);
                FloatVector c22 = FloatVector.fromArray(F, c, o2 + y + 2 * L);
                FloatVector c23 = FloatVector.fromArray(F, c, o2 + y + 3 * L);
                FloatVector c30 = FloatVector.fromArray(F, c, o3 + y);
                FloatVector c31 = FloatVector.fromArray(F, c, o3 + y + L);
                FloatVector c32 = FloatVector.fromArray(F, c, o3 + y + 2 * L);
                FloatVector c33 = FloatVector.fromArray(F, c, o3 + y + 3 * L);
                for (int x = 0, bb = bOff + y; x < inner; x++, bb += width) {
                    FloatVector b0 = FloatVector.fromArray(F, b, bb);
                    FloatVector b1 = FloatVector.fromArray(F, b, bb + L);
                    FloatVector b2 = FloatVector.fromArray(F, b, bb + 2 * L);
                    FloatVector b3 = FloatVector.fromArray(F, b, bb + 3 * L);
                    FloatVector e = FloatVector.broadcast(F, a[a0 + x]);
                    c00 = b0.fma(e, c00);
                    c01 = b1.fma(e, c01);
                    c02 = b2.fma(e, c02);
                    c03 = b3.fma(e, c03);
                    e = FloatVector.broadcast(F, a[a1 + x]);
                    c10 = b0.fma(e, c10);
                    c11 = b1.fma(e, c11);
                    c12 = b2.fma(e, c12);
                    c13 = b3.fma(e, c13);
                    e = FloatVector.broadcast(F, a[a2 + x]);
                    c20 = b0.fma(e, c20);
                    c21 = b1.fma(e, c21);
                    c22 = b2.fma(e, c22);
                    c23 = b3.fma(e, c23);
                    e = FloatVector.broadcast(F, a[a3 + x]);
                    c30 = b0.fma(e, c30);
                    c31 = b1.fma(e, c31);
                    c32 = b2.fma(e, c32);
                    c33 = b3.fma(e, c33);
                }
                c00.intoArray(c, o0 + y);
                c01.intoArray(c, o0 + y + L);
                c02.intoArray(c, o0 + y + 2 * L);
                c03.intoArray(c, o0 + y + 3 * L);
                c10.intoArray(c, o1 + y);
                c11.intoArray(c, o1 + y + L);
                c12.intoArray(c, o1 + y + 2 * L);
                c13.intoArray(c, o1 + y + 3 * L);
                c20.intoArray(c, o2 + y);
                c21.intoArray(c, o2 + y + L);
                c22.intoArray(c, o2 + y + 2 * L);
                c23.intoArray(c, o2 + y + 3 * L);
                c30.intoArray(c, o3 + y);
                c31.intoArray(c, o3 + y + L);
                c32.intoArray(c, o3 + y + 2 * L);
                c33.intoArray(c, o3 + y + 3 * L);
            }
            // Remaining columns (width not a multiple of 4 vectors): one vector at a time.
            for (; y < width; y += L) {
                FloatVector c0 = FloatVector.fromArray(F, c, o0 + y);
                FloatVector c1 = FloatVector.fromArray(F, c, o1 + y);
                FloatVector c2 = FloatVector.fromArray(F, c, o2 + y);
                FloatVector c3 = FloatVector.fromArray(F, c, o3 + y);
                for (int x = 0, bb = bOff + y; x < inner; x++, bb += width) {
                    FloatVector b0 = FloatVector.fromArray(F, b, bb);
                    c0 = b0.fma(FloatVector.broadcast(F, a[a0 + x]), c0);
                    c1 = b0.fma(FloatVector.broadcast(F, a[a1 + x]), c1);
                    c2 = b0.fma(FloatVector.broadcast(F, a[a2 + x]), c2);
                    c3 = b0.fma(FloatVector.broadcast(F, a[a3 + x]), c3);
                }
                c0.intoArray(c, o0 + y);
                c1.intoArray(c, o1 + y);
                c2.intoArray(c, o2 + y);
                c3.intoArray(c, o3 + y);
            }
        }
    }

    @Override
    public void softmaxBackward(float[] s, float[] dp, int keys, int key0, float[] lse, float[] delta, int rowOff,
                                int[] first, int[] last, float[] diag, boolean masked, float cap, float slope) {
        float inverseCap = cap > 0f ? 1f / cap : 0f;
        // Lane vectors outside, keys inside: each row statistic is loaded once per tile.
        for (int lane = 0; lane < KT; lane += L) {
            int row = rowOff + lane;
            FloatVector rowLse = FloatVector.fromArray(F, lse, row);
            FloatVector rowDelta = FloatVector.fromArray(F, delta, row);
            FloatVector rowDiag = FloatVector.fromArray(F, diag, row);
            IntVector rowFirst = IntVector.fromArray(I, first, row);
            IntVector rowLast = IntVector.fromArray(I, last, row);
            for (int j = 0; j < keys; j++) {
                int at = j * KT + lane;
                int key = key0 + j;
                FloatVector y = FloatVector.fromArray(F, s, at);
                FloatVector capSlope = ONE;
                if (cap > 0f) {
                    FloatVector th = tanh(y.mul(inverseCap));
                    y = th.mul(cap);
                    capSlope = th.mul(th).neg().add(1f);
                }
                if (slope != 0f) {
                    y = y.sub(rowDiag.sub(key).abs().mul(slope));
                }
                FloatVector p = exp(y.sub(rowLse));
                FloatVector ds = FloatVector.fromArray(F, dp, at).sub(rowDelta).mul(p).mul(capSlope);
                if (masked) {
                    VectorMask<Float> hidden = rowFirst.compare(VectorOperators.GT, key)
                            .or(rowLast.compare(VectorOperators.LT, key)).cast(F);
                    p = p.blend(0f, hidden);
                    ds = ds.blend(0f, hidden);
                }
                p.intoArray(s, at);
                ds.intoArray(dp, at);
            }
        }
    }

    /**
     * tanh(y). For |y| >= 1/2: sign(y) (1 - e) / (1 + e) with e = exp(-2|y|) <= 1, which cannot
     * overflow. Below 1/2 that form cancels (1 - e is tiny for a tiny y, and a large softcap makes
     * every y tiny), so there the odd Taylor series to y^13 is used: its truncation error is below
     * 1e-7 relative at |y| = 1/2 and shrinks as y^14 below.
     */
    static FloatVector tanh(FloatVector y) {
        FloatVector a = y.abs();
        FloatVector e = exp(a.mul(-2f));
        FloatVector large = e.neg().add(1f).div(e.add(1f));
        FloatVector a2 = a.mul(a);
        FloatVector poly = a2.fma(T13, T11);
        poly = poly.fma(a2, T9);
        poly = poly.fma(a2, T7);
        poly = poly.fma(a2, T5);
        poly = poly.fma(a2, T3);
        FloatVector small = poly.mul(a2).fma(a, a);
        FloatVector th = large.blend(small, a.compare(VectorOperators.LT, 0.5f));
        return th.blend(th.neg(), y.compare(VectorOperators.LT, 0f));
    }

    /** e^x, relative error below 3e-7 on [-87, 88]; 0 below, +inf-free above (clamped). */
    static FloatVector exp(FloatVector x) {
        FloatVector xc = x.max(EXP_MIN).min(EXP_MAX);
        FloatVector rounded = xc.fma(LOG2E, ROUNDER);
        FloatVector n = rounded.sub(ROUNDER);
        FloatVector r = n.fma(NEG_LN2_HI, xc);
        r = n.fma(NEG_LN2_LO, r);
        // Degree-6 Taylor polynomial of e^r on |r| <= ln(2)/2 (truncation error < 1.2e-7).
        FloatVector poly = r.fma(C6, C5);
        poly = poly.fma(r, C4);
        poly = poly.fma(r, C3);
        poly = poly.fma(r, C2);
        poly = poly.fma(r, ONE);
        poly = poly.fma(r, ONE);
        IntVector bits = rounded.reinterpretAsInts();
        FloatVector twoToN = bits.sub(ROUNDER_BITS - 127).lanewise(VectorOperators.LSHL, 23)
                .reinterpretAsFloats();
        VectorMask<Float> underflow = x.compare(VectorOperators.LT, EXP_MIN);
        return poly.mul(twoToN).blend(0f, underflow);
    }

    private static FloatVector iota() {
        float[] lanes = new float[L];
        for (int i = 0; i < L; i++) {
            lanes[i] = i;
        }
        return FloatVector.fromArray(F, lanes, 0);
    }
}
