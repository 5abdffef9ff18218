package dev.aule.cpu.vector;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;

/**
 * The decode kernels of F16 and BF16 keys and values read in place from their {@code short[]}: each row is widened in
 * registers ({@link HalfWidening#widen(ShortVector, boolean)}) as the FMAs consume it, so the cache streams from memory
 * while the kernel computes, as an F32 cache read in place does, instead of being widened block by block into scratch
 * first (a pass that waits on memory with nothing to compute). Every output element sums the same products in the
 * same order as {@link Scores#scoresByRow} and {@link Products#accumulate} over the widened rows, so the bits are those
 * of widening into scratch and running the F32 kernels. Rows are a whole number of vectors long.
 */
public final class HalfProducts {
    private static final VectorSpecies<Float> F = SimdWidth.F;
    private static final VectorSpecies<Short> H = SimdWidth.H;
    private static final int L = SimdWidth.L;
    private static final int KT = SimdWidth.KT;
    /** Tensors store 16-bit patterns in native order. */
    private static final ByteOrder NATIVE = ByteOrder.nativeOrder();

    private HalfProducts() {}

    /**
     * {@code s[t * KT + sCol + j] = sum_x q[t * dp + x] widen(k[kOff + j * kStride + x])} for {@code t < rows} (a
     * multiple of 4), {@code j < keys}, {@code x < dp}: {@code dp} a multiple of the lanes and the key rows that long.
     */
    public static void scoresByRow(
            float[] q,
            int rows,
            int dp,
            short[] k,
            int kOff,
            int kStride,
            boolean bf16,
            int keys,
            float[] s,
            int sCol) {
        // Scores.scoresByRow's loop one key at a time, each key vector widened from its 16-bit lanes where that one
        // loads floats. (Two keys at a time, as Scores does, ran 3 times slower: with the widening twice in the loop
        // C2 reached its inlining node limit and left vector operations out of line.)
        for (int j = 0, kb = kOff; j < keys; j++, kb += kStride) {
            for (int t = 0; t < rows; t += 4) {
                int q0 = t * dp;
                int q1 = q0 + dp;
                int q2 = q1 + dp;
                int q3 = q2 + dp;
                FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
                for (int x = 0; x < dp; x += L) {
                    FloatVector kv = HalfWidening.widen(ShortVector.fromArray(H, k, kb + x), bf16);
                    a0 = FloatVector.fromArray(F, q, q0 + x).fma(kv, a0);
                    a1 = FloatVector.fromArray(F, q, q1 + x).fma(kv, a1);
                    a2 = FloatVector.fromArray(F, q, q2 + x).fma(kv, a2);
                    a3 = FloatVector.fromArray(F, q, q3 + x).fma(kv, a3);
                }
                int s0 = t * KT + sCol + j;
                FloatVector sums = Reductions.sums(a0, a1, a2, a3);
                s[s0] = sums.lane(Reductions.SUM_A);
                s[s0 + KT] = sums.lane(Reductions.SUM_B);
                s[s0 + 2 * KT] = sums.lane(Reductions.SUM_C);
                s[s0 + 3 * KT] = sums.lane(Reductions.SUM_D);
            }
        }
    }

    /**
     * {@code o[t] = alpha[t] o[t] + sum_j p[t * KT + pCol + j] widen(v[vOff + j * vStride ..])} over the {@code dvp}
     * floats of each output row ({@code dvp} apart, a multiple of the lanes) for {@code t < rows} (a multiple of 4),
     * {@code j < keys}.
     */
    public static void accumulate(
            float[] p,
            int rows,
            int keys,
            int pCol,
            short[] v,
            int vOff,
            int vStride,
            boolean bf16,
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
            float al0 = alpha[t], al1 = alpha[t + 1], al2 = alpha[t + 2], al3 = alpha[t + 3];
            int c = 0;
            // 4 rows x 2 vectors of columns: each widened value vector feeds 4 FMAs and each broadcast probability
            // 2. The F32 kernel's 4 x 4 block leaves no registers for the widening's temporaries (as with the
            // quantized kernels). Each element still sums its keys in order, so the bits are the 4 x 4 block's.
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
                    FloatVector v0 = HalfWidening.widen(ShortVector.fromArray(H, v, vb), bf16);
                    FloatVector v1 = HalfWidening.widen(ShortVector.fromArray(H, v, vb + L), bf16);
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
            for (; c < dvp; c += L) {
                FloatVector a0 = FloatVector.fromArray(F, o, o0 + c).mul(al0);
                FloatVector a1 = FloatVector.fromArray(F, o, o1 + c).mul(al1);
                FloatVector a2 = FloatVector.fromArray(F, o, o2 + c).mul(al2);
                FloatVector a3 = FloatVector.fromArray(F, o, o3 + c).mul(al3);
                for (int j = 0, vb = vOff + c; j < keys; j++, vb += vStride) {
                    FloatVector v0 = HalfWidening.widen(ShortVector.fromArray(H, v, vb), bf16);
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
     * {@link #scoresByRow(float[], int, int, short[], int, int, boolean, int, float[], int)} with key row {@code j} at
     * byte {@code kOff + j * kStride} of {@code k}: the same loop over other memory, kept apart because C2 compiles
     * each form to plain vector loads.
     */
    public static void scoresByRow(
            float[] q,
            int rows,
            int dp,
            MemorySegment k,
            long kOff,
            long kStride,
            boolean bf16,
            int keys,
            float[] s,
            int sCol) {
        // As the array version, the key rows loaded from the segment.
        long kb = kOff;
        for (int j = 0; j < keys; j++, kb += kStride) {
            for (int t = 0; t < rows; t += 4) {
                int q0 = t * dp;
                int q1 = q0 + dp;
                int q2 = q1 + dp;
                int q3 = q2 + dp;
                FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
                for (int x = 0; x < dp; x += L) {
                    FloatVector kv = HalfWidening.widen(
                            ShortVector.fromMemorySegment(H, k, kb + (long) x * Short.BYTES, NATIVE), bf16);
                    a0 = FloatVector.fromArray(F, q, q0 + x).fma(kv, a0);
                    a1 = FloatVector.fromArray(F, q, q1 + x).fma(kv, a1);
                    a2 = FloatVector.fromArray(F, q, q2 + x).fma(kv, a2);
                    a3 = FloatVector.fromArray(F, q, q3 + x).fma(kv, a3);
                }
                int s0 = t * KT + sCol + j;
                FloatVector sums = Reductions.sums(a0, a1, a2, a3);
                s[s0] = sums.lane(Reductions.SUM_A);
                s[s0 + KT] = sums.lane(Reductions.SUM_B);
                s[s0 + 2 * KT] = sums.lane(Reductions.SUM_C);
                s[s0 + 3 * KT] = sums.lane(Reductions.SUM_D);
            }
        }
    }

    /**
     * {@link #accumulate(float[], int, int, int, short[], int, int, boolean, int, float[], float[])} with value row
     * {@code j} at byte {@code vOff + j * vStride} of {@code v}.
     */
    public static void accumulate(
            float[] p,
            int rows,
            int keys,
            int pCol,
            MemorySegment v,
            long vOff,
            long vStride,
            boolean bf16,
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
            float al0 = alpha[t], al1 = alpha[t + 1], al2 = alpha[t + 2], al3 = alpha[t + 3];
            int c = 0;
            // 4 rows x 2 vectors of columns: each widened value vector feeds 4 FMAs and each broadcast probability
            // 2. The F32 kernel's 4 x 4 block leaves no registers for the widening's temporaries (as with the
            // quantized kernels). Each element still sums its keys in order, so the bits are the 4 x 4 block's.
            for (; c + 2 * L <= dvp; c += 2 * L) {
                FloatVector a00 = FloatVector.fromArray(F, o, o0 + c).mul(al0);
                FloatVector a01 = FloatVector.fromArray(F, o, o0 + c + L).mul(al0);
                FloatVector a10 = FloatVector.fromArray(F, o, o1 + c).mul(al1);
                FloatVector a11 = FloatVector.fromArray(F, o, o1 + c + L).mul(al1);
                FloatVector a20 = FloatVector.fromArray(F, o, o2 + c).mul(al2);
                FloatVector a21 = FloatVector.fromArray(F, o, o2 + c + L).mul(al2);
                FloatVector a30 = FloatVector.fromArray(F, o, o3 + c).mul(al3);
                FloatVector a31 = FloatVector.fromArray(F, o, o3 + c + L).mul(al3);
                long vb = vOff + (long) c * Short.BYTES;
                for (int j = 0; j < keys; j++, vb += vStride) {
                    FloatVector v0 = HalfWidening.widen(ShortVector.fromMemorySegment(H, v, vb, NATIVE), bf16);
                    FloatVector v1 =
                            HalfWidening.widen(ShortVector.fromMemorySegment(H, v, vb + L * Short.BYTES, NATIVE), bf16);
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
            for (; c < dvp; c += L) {
                FloatVector a0 = FloatVector.fromArray(F, o, o0 + c).mul(al0);
                FloatVector a1 = FloatVector.fromArray(F, o, o1 + c).mul(al1);
                FloatVector a2 = FloatVector.fromArray(F, o, o2 + c).mul(al2);
                FloatVector a3 = FloatVector.fromArray(F, o, o3 + c).mul(al3);
                long vb = vOff + (long) c * Short.BYTES;
                for (int j = 0; j < keys; j++, vb += vStride) {
                    FloatVector v0 = HalfWidening.widen(ShortVector.fromMemorySegment(H, v, vb, NATIVE), bf16);
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
