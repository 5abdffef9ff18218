package dev.aule.cpu.vector;

import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The array and segment forms of each kernel are one loop over two kinds of memory: on the same data they give
 * the same bits, at the width this JVM runs (the build runs this class at 512, 256 and 128 bits where the CPU has
 * them, see {@link SimdWidth#PROPERTY}). Shapes cover groups of 4 rows alone and several, value widths that are
 * and are not whole 4-vector blocks, keys strided and not, and runs placed inside the block.
 */
class ArrayAndSegmentKernelsTest {
    private static final int L = SimdWidth.lanes();
    private static final int KT = SimdWidth.keyTile();

    @Test
    void scoresByRowFromAnArrayAndFromASegmentAreBitwiseEqual() {
        SplittableRandom rnd = new SplittableRandom(11);
        for (int rows : new int[] {4, 8, 12, 32}) {
            for (int dp : new int[] {L, 3 * L, 8 * L}) {
                for (int keys : new int[] {1, KT / 2 + 1, KT}) {
                    int stride = dp + (keys % 2 == 0 ? 0 : L);
                    int sCol = KT - keys;
                    float[] q = random(rnd, rows * dp);
                    float[] k = random(rnd, 3 + keys * stride);
                    float[] fromArray = new float[rows * KT];
                    float[] fromSegment = new float[rows * KT];
                    Scores.scoresByRow(q, rows, dp, k, 3, stride, keys, fromArray, sCol);
                    Scores.scoresByRow(
                            q, rows, dp, MemorySegment.ofArray(k), bytes(3), bytes(stride), keys, fromSegment, sCol);
                    assertBitwiseEqual(
                            fromArray, fromSegment, "scoresByRow rows " + rows + " dp " + dp + " keys " + keys);
                }
            }
        }
    }

    @Test
    void accumulateFromAnArrayAndFromASegmentAreBitwiseEqual() {
        SplittableRandom rnd = new SplittableRandom(12);
        for (int rows : new int[] {4, 8, 12, 32}) {
            for (int dvp : new int[] {L, 2 * L, 4 * L, 7 * L, 8 * L}) {
                for (int keys : new int[] {1, KT / 2 + 1, KT}) {
                    int stride = dvp + (keys % 2 == 0 ? 0 : L);
                    int pCol = KT - keys;
                    float[] p = random(rnd, rows * KT);
                    float[] v = random(rnd, 5 + keys * stride);
                    float[] alpha = random(rnd, rows);
                    float[] start = random(rnd, rows * dvp);
                    float[] fromArray = start.clone();
                    float[] fromSegment = start.clone();
                    Products.accumulate(p, rows, keys, pCol, v, 5, stride, dvp, fromArray, alpha);
                    Products.accumulate(
                            p,
                            rows,
                            keys,
                            pCol,
                            MemorySegment.ofArray(v),
                            bytes(5),
                            bytes(stride),
                            dvp,
                            fromSegment,
                            alpha);
                    assertBitwiseEqual(
                            fromArray, fromSegment, "accumulate rows " + rows + " dvp " + dvp + " keys " + keys);
                }
            }
        }
    }

    /** The byte size of {@code floats} floats: offsets and strides of the segment kernels. */
    private static long bytes(int floats) {
        return (long) floats * Float.BYTES;
    }

    private static float[] random(SplittableRandom rnd, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (rnd.nextDouble() * 2 - 1);
        }
        return x;
    }

    private static void assertBitwiseEqual(float[] want, float[] got, String what) {
        for (int i = 0; i < want.length; i++) {
            int at = i;
            assertEquals(
                    Float.floatToRawIntBits(want[i]),
                    Float.floatToRawIntBits(got[i]),
                    () -> what + " at " + at + " (" + SimdWidth.bits() + "-bit vectors)");
        }
    }
}
