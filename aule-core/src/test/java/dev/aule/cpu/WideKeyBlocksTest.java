package dev.aule.cpu;

import dev.aule.Attention;
import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.Accuracy;
import dev.aule.spi.AttentionBackend;
import dev.aule.testing.Forwards;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The forward's wide key blocks (several key panels per online-softmax step at head dims up to
 * {@link TileConfig#WIDE_MAX_HEAD_DIM}, {@code dev.aule.cpu.vector.WideBlocks}) against the float64 reference: the
 * shapes that take them (packed keys, two tiles or more, at least two whole key panels), with a row max that moves
 * late in a block, causal tiles (wide blocks left of the diagonal, panels on it), keys that are not a multiple of a
 * panel, strided views of a fused QKV buffer as an encoder passes them, a NaN in a key the rows see, and scores near
 * the float range (the tile's exact rerun); and a packed batch gives each sequence's bits alone.
 */
class WideKeyBlocksTest {
    private final AttentionBackend cpu = Backends.get("cpu");

    @Test
    void wideShapesMatchTheReference() {
        SplittableRandom rnd = new SplittableRandom(51);
        int[][] shapes = { // batch, query heads, kv heads, queries, keys, head dim
            {1, 12, 12, 512, 512, 32},
            {2, 4, 2, 300, 300, 64},
            {1, 3, 3, 1100, 1100, 16},
            {1, 2, 1, 200, 777, 8},
            {1, 4, 4, 130, 1030, 48},
        };
        for (int[] s : shapes) {
            for (boolean causal : new boolean[] {false, true}) {
                Tensor q = Tensors.random(rnd, DType.F32, s[0], s[1], s[3], s[5]);
                Tensor k = Tensors.random(rnd, DType.F32, s[0], s[2], s[4], s[5]);
                Tensor v = Tensors.random(rnd, DType.F32, s[0], s[2], s[4], s[5]);
                // A key that every row scores far above the rest, late in a wide block: the max moves there.
                int late = Math.min(s[4] - 1, 2 * TileMaths.best().keyTile() + 37);
                for (int b = 0; b < s[0]; b++) {
                    for (int h = 0; h < s[2]; h++) {
                        for (int x = 0; x < s[5]; x++) {
                            k.set(b, h, late, x, 3f);
                        }
                    }
                }
                assertMatches(q, k, v, AttentionOptions.builder().causal(causal).build(), s);
            }
        }
    }

    @Test
    void aNaNInASeenKeyAndScoresNearTheFloatRangeMatchTheReference() {
        SplittableRandom rnd = new SplittableRandom(52);
        int[] s = {1, 2, 2, 256, 512, 32};
        Tensor q = Tensors.random(rnd, DType.F32, 1, 2, 256, 32);
        Tensor k = Tensors.random(rnd, DType.F32, 1, 2, 512, 32);
        Tensor v = Tensors.random(rnd, DType.F32, 1, 2, 512, 32);
        k.set(0, 1, 300, 5, Float.NaN); // head 1's rows all see it: NaN rows, as in the reference
        assertMatches(q, k, v, AttentionOptions.defaults(), s);
        Tensor big = Tensors.random(rnd, DType.F32, 1, 2, 256, 32);
        for (int i = 0; i < 256; i++) {
            for (int x = 0; x < 32; x++) {
                big.set(0, 0, i, x, big.get(0, 0, i, x) * 1e19f); // float partial sums of q.k beyond 3.4e38
            }
        }
        Tensor kBig = Tensors.random(rnd, DType.F32, 1, 2, 512, 32);
        for (int j = 0; j < 512; j++) {
            for (int x = 0; x < 32; x++) {
                kBig.set(0, 0, j, x, kBig.get(0, 0, j, x) * 1e19f);
            }
        }
        assertMatches(big, kBig, v, AttentionOptions.defaults(), s);
    }

    /**
     * Strided views of one {@code [tokens][3][heads][d]} buffer, written into {@code [tokens][heads][d]} rows, as a
     * BERT encoder calls it; sequences of a packed batch give the bits they give alone.
     */
    @Test
    void packedStridedSequencesGiveTheirBitsAloneAndMatchTheReference() {
        SplittableRandom rnd = new SplittableRandom(53);
        int heads = 12;
        int d = 32;
        int h = heads * d;
        int[] lengths = {520, 9, 300};
        int[] offsets = {0, 520, 529, 829};
        int tokens = offsets[3];
        float[] qkv = new float[tokens * 3 * h];
        for (int i = 0; i < qkv.length; i++) {
            qkv[i] = (float) (rnd.nextDouble() * 2 - 1);
        }
        float[] packed = new float[tokens * h];
        Attention.forwardVarlenInto(
                view(qkv, 0, tokens, heads, d, 3 * h),
                view(qkv, h, tokens, heads, d, 3 * h),
                view(qkv, 2 * h, tokens, heads, d, 3 * h),
                offsets,
                offsets,
                view(packed, 0, tokens, heads, d, h),
                null,
                AttentionOptions.defaults());
        for (int s = 0; s < lengths.length; s++) {
            int n = lengths[s];
            float[] one = java.util.Arrays.copyOfRange(qkv, offsets[s] * 3 * h, offsets[s + 1] * 3 * h);
            float[] alone = new float[n * h];
            int[] off = {0, n};
            Tensor q = view(one, 0, n, heads, d, 3 * h);
            Tensor k = view(one, h, n, heads, d, 3 * h);
            Tensor v = view(one, 2 * h, n, heads, d, 3 * h);
            Attention.forwardVarlenInto(
                    q, k, v, off, off, view(alone, 0, n, heads, d, h), null, AttentionOptions.defaults());
            assertArrayEquals(
                    java.util.Arrays.copyOfRange(packed, offsets[s] * h, offsets[s + 1] * h),
                    alone,
                    "sequence " + s + " of " + n + " tokens, packed and alone");
            int[] shape = {1, heads, heads, n, n, d};
            assertMatches(contiguous(q), contiguous(k), contiguous(v), AttentionOptions.defaults(), shape);
        }
    }

    private void assertMatches(Tensor q, Tensor k, Tensor v, AttentionOptions options, int[] s) {
        String where = java.util.Arrays.toString(s) + " " + options;
        Forwards.Errors errors = Forwards.againstReference(
                cpu, (backend, out, lse) -> backend.forward(q, k, v, out, lse, options), s[0], s[1], s[3], s[5]);
        double bound = Accuracy.forwardTolerance(DType.F32, q, k, options);
        double limit = Double.isNaN(bound) ? Accuracy.F32_TOLERANCE : bound; // a NaN key: NaN rows on both sides
        assertTrue(errors.out() < limit, () -> where + ": out error " + errors.out() + " (limit " + limit + ")");
        assertTrue(errors.lse() < Accuracy.LSE_TOLERANCE, () -> where + ": lse error " + errors.lse());
    }

    private static Tensor view(float[] data, int first, int tokens, int heads, int d, int rowStride) {
        return Tensor.of(
                MemorySegment.ofArray(data).asSlice((long) first * Float.BYTES),
                DType.F32,
                new long[] {1, heads, tokens, d},
                new long[] {(long) tokens * rowStride, d, rowStride, 1});
    }

    private static Tensor contiguous(Tensor t) {
        long[] shape = t.shape();
        Tensor c = Tensor.allocate(DType.F32, (int) shape[0], (int) shape[1], (int) shape[2], (int) shape[3]);
        for (int b = 0; b < shape[0]; b++) {
            for (int h = 0; h < shape[1]; h++) {
                for (int i = 0; i < shape[2]; i++) {
                    for (int x = 0; x < shape[3]; x++) {
                        c.set(b, h, i, x, t.get(b, h, i, x));
                    }
                }
            }
        }
        return c;
    }
}
