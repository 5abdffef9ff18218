package dev.aule.cpu.vector;

import dev.aule.spi.Dropout;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The dropout keep bits of {@link Dropout} in SIMD: one {@code triple32} hash per lane serves two vectors of keys
 * ({@code j} and {@code j + 16} take its low and high halves), so the vector width must divide 16 (4, 8 or 16
 * floats). The forward works on a row of scores (keys along the lanes, one row key); the backward on a transposed
 * tile (query rows along the lanes, each with its own key), producing a tile of factors, {@code 1 / (1 - p)} where
 * kept and 0 where dropped.
 */
public final class DropoutMasks {
    private static final VectorSpecies<Float> F = SimdWidth.F;
    private static final VectorSpecies<Integer> I = SimdWidth.I;
    private static final int L = SimdWidth.L;
    private static final int KT = SimdWidth.KT;
    // lane * GOLDEN32: the group offsets of a vector of consecutive keys
    private static final IntVector LANE_GROUPS = IntVector.zero(I).addIndex(1).mul(Dropout.GOLDEN32);
    private static final IntVector LANES = IntVector.zero(I).addIndex(1);

    private DropoutMasks() {}

    /**
     * {@code s[off + j] = keep(key0 + j) ? s[off + j] * inverse : 0} for {@code j < n}, over one row whose key halves
     * are {@code lo} and {@code hi}; {@code n} a multiple of the lanes. With {@code key0} a multiple of the lanes each
     * vector of keys lies in one half of a group of 32 and shares its hashes with the vector 16 keys on; else (a
     * split or a window starting anywhere) every lane hashes its own key.
     */
    public static void row(float[] s, int off, int n, int key0, int lo, int hi, int threshold, float inverse) {
        if (key0 % L != 0) {
            unaligned(s, off, n, key0, lo, hi, threshold, inverse);
            return;
        }
        for (int j = 0; j < n; j += L) {
            int key = key0 + j;
            boolean high = ((key >>> 4) & 1) != 0;
            if (high && j >= 16) {
                continue; // done with its low half, 16 keys back
            }
            IntVector x = triple32(
                    LANE_GROUPS.add(Dropout.group(key) * Dropout.GOLDEN32 + hi).lanewise(VectorOperators.XOR, lo));
            if (high) {
                apply(s, off + j, x.lanewise(VectorOperators.LSHR, 16), threshold, inverse);
            } else {
                apply(s, off + j, x.and(0xffff), threshold, inverse);
                if (j + 16 < n) {
                    apply(s, off + j + 16, x.lanewise(VectorOperators.LSHR, 16), threshold, inverse);
                }
            }
        }
    }

    private static void unaligned(float[] s, int off, int n, int key0, int lo, int hi, int threshold, float inverse) {
        for (int j = 0; j < n; j += L) {
            IntVector keys = LANES.add(key0 + j);
            IntVector groups = keys.lanewise(VectorOperators.LSHR, 5)
                    .lanewise(VectorOperators.LSHL, 4)
                    .add(keys.and(15));
            IntVector x = triple32(groups.mul(Dropout.GOLDEN32).add(hi).lanewise(VectorOperators.XOR, lo));
            // high half: shift by 16; low half: shift by 0, then keep 16 bits
            IntVector shift = keys.and(16);
            IntVector draw = x.lanewise(VectorOperators.LSHR, shift).and(0xffff);
            apply(s, off + j, draw, threshold, inverse);
        }
    }

    /**
     * {@code s = draw >= threshold ? s * inverse : 0} on one vector. The select is done on the bits, with the sign of
     * {@code draw - threshold} (both below 2^17) as the mask: cheaper than a compare and blend (whose mask moves
     * from the int to the float species), and a dropped NaN becomes 0 all the same.
     */
    private static void apply(float[] s, int at, IntVector draw, int threshold, float inverse) {
        IntVector dropped = draw.sub(threshold).lanewise(VectorOperators.ASHR, 31); // all ones where dropped
        FloatVector.fromArray(F, s, at)
                .mul(inverse)
                .reinterpretAsInts()
                .lanewise(VectorOperators.AND_NOT, dropped)
                .reinterpretAsFloats()
                .intoArray(s, at);
    }

    /**
     * The factors of a transposed tile: {@code f[j][lane] = keep ? inverse : 0} for key {@code key0 + j}
     * ({@code j < keys}) and query row {@code rowOff + lane} ({@code lane < KT}), whose key halves are
     * {@code lo[row]} and {@code hi[row]}.
     */
    public static void factors(
            float[] f, int keys, int key0, int[] lo, int[] hi, int rowOff, int threshold, float inverse) {
        IntVector keptValue = IntVector.broadcast(I, Float.floatToRawIntBits(inverse));
        for (int lane = 0; lane < KT; lane += L) {
            IntVector rowLo = IntVector.fromArray(I, lo, rowOff + lane);
            IntVector rowHi = IntVector.fromArray(I, hi, rowOff + lane);
            for (int j = 0; j < keys; j++) {
                int key = key0 + j;
                boolean high = ((key >>> 4) & 1) != 0;
                if (high && j >= 16) {
                    continue;
                }
                IntVector x = triple32(
                        rowHi.add(Dropout.group(key) * Dropout.GOLDEN32).lanewise(VectorOperators.XOR, rowLo));
                if (high) {
                    factor(f, j * KT + lane, x.lanewise(VectorOperators.LSHR, 16), threshold, keptValue);
                } else {
                    factor(f, j * KT + lane, x.and(0xffff), threshold, keptValue);
                    if (j + 16 < keys) {
                        factor(f, (j + 16) * KT + lane, x.lanewise(VectorOperators.LSHR, 16), threshold, keptValue);
                    }
                }
            }
        }
    }

    private static void factor(float[] f, int at, IntVector draw, int threshold, IntVector keptValue) {
        IntVector dropped = draw.sub(threshold).lanewise(VectorOperators.ASHR, 31);
        keptValue
                .lanewise(VectorOperators.AND_NOT, dropped)
                .reinterpretAsFloats()
                .intoArray(f, at);
    }

    /**
     * {@code x[i] = f[i] == 0 ? 0 : x[i] * f[i]} for {@code i < n} ({@code n} a multiple of the lanes): a dropped
     * pair becomes 0 even where {@code x} is NaN.
     */
    public static void applyFactors(float[] x, float[] f, int n) {
        for (int i = 0; i < n; i += L) {
            FloatVector factor = FloatVector.fromArray(F, f, i);
            IntVector bits = factor.reinterpretAsInts();
            // A factor is +0 or positive: (bits | -bits) >> 31 is all ones for a kept pair, 0 for a dropped one.
            IntVector kept = bits.or(bits.neg()).lanewise(VectorOperators.ASHR, 31);
            FloatVector.fromArray(F, x, i)
                    .mul(factor)
                    .reinterpretAsInts()
                    .and(kept)
                    .reinterpretAsFloats()
                    .intoArray(x, i);
        }
    }

    private static IntVector triple32(IntVector x) {
        x = x.lanewise(VectorOperators.XOR, x.lanewise(VectorOperators.LSHR, 17));
        x = x.mul(0xed5ad4bb);
        x = x.lanewise(VectorOperators.XOR, x.lanewise(VectorOperators.LSHR, 11));
        x = x.mul(0xac4c1b51);
        x = x.lanewise(VectorOperators.XOR, x.lanewise(VectorOperators.LSHR, 15));
        x = x.mul(0x31848bab);
        return x.lanewise(VectorOperators.XOR, x.lanewise(VectorOperators.LSHR, 14));
    }
}
