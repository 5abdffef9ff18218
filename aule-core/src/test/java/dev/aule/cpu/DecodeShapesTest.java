package dev.aule.cpu;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Decode-shaped forwards (1 to 8 queries, GQA groups up to 4, odd cache lengths) on every short-tile
 * path: keys and values read in place from the caller's array (BHSD, BSHD, a slice at an odd offset),
 * and copied (16-bit storage, head dims that are not whole vectors), against the float64 reference.
 */
class DecodeShapesTest {
    private static final int[][] SHAPES = { // {Hq, Hkv, Sq, Sk, D}
            {8, 2, 1, 1, 128}, {8, 2, 1, 63, 128}, {8, 2, 8, 65, 128}, {8, 2, 3, 1001, 128},
            {4, 1, 5, 777, 64}, {8, 2, 7, 2053, 80}, {2, 2, 2, 129, 48}, {8, 2, 8, 3001, 32}};

    @Test
    void simdShortTilesMatchTheReference() {
        checkAll(new CpuBackend(new VectorTileMath()));
    }

    @Test
    void scalarShortTilesMatchTheReference() {
        checkAll(new CpuBackend(new ScalarTileMath()));
    }

    private static void checkAll(CpuBackend cpu) {
        SplittableRandom rnd = new SplittableRandom(29);
        AttentionOptions[] options = {
                AttentionOptions.defaults(),
                AttentionOptions.builder().causal(true).build(),
                AttentionOptions.builder().causal(true).window(300, -1).softcap(20f).build(),
        };
        for (int[] s : SHAPES) {
            for (AttentionOptions option : options) {
                for (Layout layout : Layout.values()) {
                    Tensor q = Tensors.random(rnd, DType.F32, 1, s[0], s[2], s[4]);
                    Tensor k = layout.make(rnd, s[1], s[3], s[4]);
                    Tensor v = layout.make(rnd, s[1], s[3], s[4]);
                    Tensor out = Tensor.allocate(DType.F32, 1, s[0], s[2], s[4]);
                    Tensor lse = Tensor.allocate(DType.F32, 1, s[0], s[2], 1);
                    Tensor ref = Tensor.allocate(DType.F32, 1, s[0], s[2], s[4]);
                    Tensor refLse = Tensor.allocate(DType.F32, 1, s[0], s[2], 1);
                    out.fill(Float.NaN);
                    lse.fill(Float.NaN);
                    cpu.forward(q, k, v, out, lse, option);
                    Backends.get("reference").forward(q, k, v, ref, refLse, option);
                    String where = java.util.Arrays.toString(s) + " " + layout + " " + option;
                    double tolerance = layout == Layout.BF16 ? 1e-2 : 1e-5;
                    assertTrue(Tensors.relativeError(out, ref) < tolerance, "out " + where);
                    assertTrue(Tensors.relativeError(lse, refLse) < tolerance, "lse " + where);
                }
            }
        }
    }

    /** How keys and values are stored. */
    private enum Layout {
        BHSD, BSHD, SLICE, BF16;

        Tensor make(SplittableRandom rnd, int heads, int seq, int dim) {
            int n = heads * seq * dim;
            float[] data = new float[n + 13];
            for (int i = 0; i < data.length; i++) {
                data[i] = (float) (rnd.nextDouble() * 2 - 1);
            }
            return switch (this) {
                case BHSD -> Tensor.of(java.util.Arrays.copyOf(data, n), 1, heads, seq, dim);
                case BSHD -> Tensor.ofBshd(java.util.Arrays.copyOf(data, n), 1, seq, heads, dim);
                case SLICE -> Tensor.of(MemorySegment.ofArray(data).asSlice(13L * Float.BYTES), DType.F32,
                        new long[] {1, heads, seq, dim}, new long[] {(long) heads * seq * dim, (long) seq * dim, dim, 1});
                case BF16 -> Tensors.random(rnd, DType.BF16, 1, heads, seq, dim);
            };
        }
    }
}
