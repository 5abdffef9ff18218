package dev.aule.cpu.vector;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;

/**
 * The short (decode) tile's scores against keys read row-major, in place or copied: by row (one horizontal sum
 * per score) or, for more rows, by key with the query rows along the lanes. The array and segment forms of
 * {@link #scoresByRow} are the same loop over two kinds of memory, kept apart because C2 compiles each to
 * plain vector loads; a test holds them to bitwise-equal results.
 */
public final class Scores {
    private static final VectorSpecies<Float> F = SimdWidth.F;
    private static final int L = SimdWidth.L;
    private static final int KT = SimdWidth.KT;
    /** Tensors store floats in native order. */
    private static final ByteOrder NATIVE = ByteOrder.nativeOrder();

    private Scores() {}

    /** Columns of the transposed query tile {@link #scoresByKey} reads: {@code rows} rounded up to whole vectors. */
    public static int queryColumns(int rows) {
        return (rows + L - 1) / L * L;
    }

    /**
     * {@code s[t][sCol + j] = q[t] . k[j]}: query rows {@code dp} apart, key row {@code j} at
     * {@code kOff + j * kStride} (the contract of {@code TileMath.scoresByRow}).
     */
    public static void scoresByRow(
            float[] q, int rows, int dp, float[] k, int kOff, int kStride, int keys, float[] s, int sCol) {
        // Keys outside, groups of 4 query rows inside: a key row (at most 2 KiB) is loaded from memory
        // once and stays in L1 for every group, and the query tile (at most 32 x 512 floats) stays
        // in L1/L2. 4 rows share each loaded key vector; one horizontal sum per (row, key).
        // Two keys at a time: 8 independent accumulator chains, each loaded query vector feeding 2 FMAs, and the 4
        // rows' sums of a key reduced together (Reductions.sums, sum()'s bits); an odd last key scored twice and kept
        // once. (One key at a
        // time waited on its 4 chains and 4 reductions: about 1.5 times slower from L1; 4 keys at a time spilled.)
        int j = 0;
        int kb = kOff;
        for (; j < keys; j += 2, kb += 2 * kStride) {
            int kc = j + 1 < keys ? kb + kStride : kb; // an odd last key: scored twice, kept once
            for (int t = 0; t < rows; t += 4) {
                int q0 = t * dp;
                int q1 = q0 + dp;
                int q2 = q1 + dp;
                int q3 = q2 + dp;
                FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
                FloatVector b0 = a0, b1 = a0, b2 = a0, b3 = a0;
                for (int x = 0; x < dp; x += L) {
                    FloatVector kv = FloatVector.fromArray(F, k, kb + x);
                    FloatVector kw = FloatVector.fromArray(F, k, kc + x);
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
                s[s0] = sa.lane(Reductions.SUM_A);
                s[s0 + KT] = sa.lane(Reductions.SUM_B);
                s[s0 + 2 * KT] = sa.lane(Reductions.SUM_C);
                s[s0 + 3 * KT] = sa.lane(Reductions.SUM_D);
                if (j + 1 < keys) {
                    FloatVector sb = Reductions.sums(b0, b1, b2, b3);
                    s[s0 + 1] = sb.lane(Reductions.SUM_A);
                    s[s0 + 1 + KT] = sb.lane(Reductions.SUM_B);
                    s[s0 + 1 + 2 * KT] = sb.lane(Reductions.SUM_C);
                    s[s0 + 1 + 3 * KT] = sb.lane(Reductions.SUM_D);
                }
            }
        }
    }

    /**
     * {@link #scoresByRow(float[], int, int, float[], int, int, int, float[], int)} with key row {@code j} at
     * byte {@code kOff + j * kStride} of {@code k}.
     */
    public static void scoresByRow(
            float[] q, int rows, int dp, MemorySegment k, long kOff, long kStride, int keys, float[] s, int sCol) {
        // As the array version: key rows streamed from memory, shared by every group of 4 query rows.
        // Two keys at a time: 8 independent accumulator chains, each loaded query vector feeding 2 FMAs, and the 4
        // rows' sums of a key reduced together (Reductions.sums, sum()'s bits); an odd last key scored twice and kept
        // once. (One key at a
        // time waited on its 4 chains and 4 reductions: about 1.5 times slower from L1; 4 keys at a time spilled.)
        int j = 0;
        long kb = kOff;
        for (; j < keys; j += 2, kb += 2 * kStride) {
            long kc = j + 1 < keys ? kb + kStride : kb; // an odd last key: scored twice, kept once
            for (int t = 0; t < rows; t += 4) {
                int q0 = t * dp;
                int q1 = q0 + dp;
                int q2 = q1 + dp;
                int q3 = q2 + dp;
                FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
                FloatVector b0 = a0, b1 = a0, b2 = a0, b3 = a0;
                for (int x = 0; x < dp; x += L) {
                    FloatVector kv = FloatVector.fromMemorySegment(F, k, kb + (long) x * Float.BYTES, NATIVE);
                    FloatVector kw = FloatVector.fromMemorySegment(F, k, kc + (long) x * Float.BYTES, NATIVE);
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
                s[s0] = sa.lane(Reductions.SUM_A);
                s[s0 + KT] = sa.lane(Reductions.SUM_B);
                s[s0 + 2 * KT] = sa.lane(Reductions.SUM_C);
                s[s0 + 3 * KT] = sa.lane(Reductions.SUM_D);
                if (j + 1 < keys) {
                    FloatVector sb = Reductions.sums(b0, b1, b2, b3);
                    s[s0 + 1] = sb.lane(Reductions.SUM_A);
                    s[s0 + 1 + KT] = sb.lane(Reductions.SUM_B);
                    s[s0 + 1 + 2 * KT] = sb.lane(Reductions.SUM_C);
                    s[s0 + 1 + 3 * KT] = sb.lane(Reductions.SUM_D);
                }
            }
        }
    }

    /**
     * {@code s[t][sCol + j] = q[t] . k[j]} from the transposed query tile {@code qT[x][c]} (the contract of
     * {@code TileMath.scoresByKey}); {@code sT} is scratch of {@code keys * queryColumns(rows)} floats.
     */
    public static void scoresByKey(
            float[] qT, int rows, int d, float[] k, int kOff, int kStride, int keys, float[] sT, float[] s, int sCol) {
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
}
