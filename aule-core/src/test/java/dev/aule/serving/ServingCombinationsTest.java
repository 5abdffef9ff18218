package dev.aule.serving;

import dev.aule.AttentionOptions;
import dev.aule.AttentionResult;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The serving features together: quantized caches with chosen rows and RoPE in the call, and what they refuse
 * (streaming, key summaries, packed calls), and RoPE in the call on a streaming contiguous cache, whose queries
 * sit at the positions it has seen rather than at the tokens it keeps.
 */
class ServingCombinationsTest {
    private static final AttentionOptions CAUSAL =
            AttentionOptions.builder().causal(true).build();

    @Test
    void quantizedPoolsRefuseStreamingSummariesAndPackedCalls() {
        PagedKvCache pool = PagedKvCache.create(KvFormat.INT8, 16, 4, 1, 8, 8);
        int seq = pool.newSequence();
        SplittableRandom rnd = new SplittableRandom(1);
        pool.append(seq, Tensors.random(rnd, DType.F32, 1, 1, 5, 8), Tensors.random(rnd, DType.F32, 1, 1, 5, 8));
        StreamingPolicy policy = new StreamingPolicy(4, 8);
        assertRefused(() -> pool.newSequence(policy), "a streaming sequence");
        assertRefused(pool::enableKeySummaries, "key summaries");
        assertRefused(
                () -> pool.attentionVarlen(
                        new int[] {seq}, Tensors.random(rnd, DType.F32, 1, 2, 2, 8), new int[] {0, 2}, CAUSAL),
                "packed variable-length attention");
        assertRefused(() -> KvCache.allocate(KvFormat.FP8_E4M3, 1, 1, 64, 8, 8).enableStreaming(policy), "a FP8_E4M3");
        // The pool is still usable after the refusals.
        AttentionResult r = pool.attention(new int[] {seq}, Tensors.random(rnd, DType.F32, 1, 2, 1, 8), CAUSAL);
        assertTrue(Float.isFinite(r.lse().get(0, 0, 0, 0)));
    }

    private static void assertRefused(Runnable call, String start) {
        IllegalStateException e = assertThrows(IllegalStateException.class, call::run);
        assertTrue(e.getMessage().startsWith(start), e.getMessage());
    }

    /** Chosen rows of a quantized cache get the bits of the whole-cache call, and RoPE in the call its rotation. */
    @Test
    void quantizedCachesTakeChosenRowsAndRopeInTheCall() {
        SplittableRandom rnd = new SplittableRandom(2);
        Rope rope = Rope.of(16, 256, 10000, Rope.Style.NEOX);
        for (KvFormat format : new KvFormat[] {KvFormat.INT8, KvFormat.FP8_E5M2}) {
            KvCache cache = KvCache.allocate(format, 3, 2, 96, 16, 16);
            cache.append(
                    Tensors.random(rnd, DType.F32, 3, 2, 40, 16),
                    Tensors.random(rnd, DType.F32, 3, 2, 40, 16),
                    new int[] {40, 7, 33},
                    rope);
            Tensor q = Tensors.random(rnd, DType.F32, 3, 4, 2, 16);
            AttentionResult all = cache.attention(q, CAUSAL);
            int[] rows = {2, 0, 2};
            Tensor picked = Tensor.allocate(DType.F32, 3, 4, 2, 16);
            float[] row = new float[16];
            for (int i = 0; i < rows.length; i++) {
                for (int h = 0; h < 4; h++) {
                    for (int s = 0; s < 2; s++) {
                        q.readRow(rows[i], h, s, row, 0);
                        picked.writeRow(i, h, s, row, 0);
                    }
                }
            }
            AttentionResult chosen = cache.attention(rows, picked, CAUSAL);
            for (int i = 0; i < rows.length; i++) {
                assertArrayEquals(
                        all.out().sequence(rows[i], 0, 2).toFloatArray(),
                        chosen.out().sequence(i, 0, 2).toFloatArray(),
                        format + " row " + i);
            }
            Tensor rotated = Tensor.of(q.toFloatArray(), 3, 4, 2, 16);
            rope.apply(rotated, new int[] {38, 5, 31});
            assertArrayEquals(
                    cache.attention(rotated, CAUSAL).out().toFloatArray(),
                    cache.attention(q, CAUSAL, rope).out().toFloatArray(),
                    format + ": RoPE in the call");
        }
    }

    /** A streaming cache keeps fewer tokens than it has seen; RoPE in the call rotates q to the positions seen. */
    @Test
    void ropeInTheCallOfAStreamingCacheUsesThePositionsSeen() {
        SplittableRandom rnd = new SplittableRandom(3);
        Rope rope = Rope.of(16, 512, 10000, Rope.Style.GPTJ);
        KvCache cache = KvCache.allocate(DType.F32, 2, 1, 64, 16, 16);
        cache.enableStreaming(new StreamingPolicy(4, 20));
        for (int step = 0; step < 5; step++) {
            cache.append(
                    Tensors.random(rnd, DType.F32, 2, 1, 15, 16),
                    Tensors.random(rnd, DType.F32, 2, 1, 15, 16),
                    new int[] {15, 9},
                    rope);
        }
        assertTrue(cache.position(0) == 75 && cache.length(0) == 24, cache.toString());
        Tensor q = Tensors.random(rnd, DType.F32, 2, 2, 1, 16);
        Tensor rotated = Tensor.of(q.toFloatArray(), 2, 2, 1, 16);
        rope.apply(rotated, new int[] {74, 44});
        assertArrayEquals(
                cache.attention(rotated, CAUSAL).out().toFloatArray(),
                cache.attention(q, CAUSAL, rope).out().toFloatArray());
    }
}
