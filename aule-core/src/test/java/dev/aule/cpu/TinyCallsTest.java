package dev.aule.cpu;

import dev.aule.Attention;
import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentHashMap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Calls below {@link TileConfig#INLINE_MAX_FLOPS} run on the caller's thread (no hand-off to the pool, whose wake-up
 * costs more than their work); larger calls still spread over the pool. A score modifier sees the thread that runs
 * each tile.
 */
class TinyCallsTest {
    private static Set<String> threadsOf(int heads, int seq, int d, int calls) {
        Set<String> threads = ConcurrentHashMap.newKeySet();
        AttentionOptions options = AttentionOptions.builder()
                .scoreMod((score, b, h, i, j) -> {
                    threads.add(Thread.currentThread().getName());
                    return score;
                })
                .build();
        SplittableRandom rnd = new SplittableRandom(7);
        Tensor q = Tensors.random(rnd, DType.F32, 1, heads, seq, d);
        Tensor k = Tensors.random(rnd, DType.F32, 1, heads, seq, d);
        Tensor v = Tensors.random(rnd, DType.F32, 1, heads, seq, d);
        for (int i = 0; i < calls; i++) {
            Attention.forward(q, k, v, options);
        }
        return threads;
    }

    @Test
    void aTinyCallRunsOnTheCallersThreadOnly() {
        assertTrue(CpuPool.flopsBound(new dev.aule.spi.AttentionShape(1, 32, 32, 2, 2, 64, 64))
                < TileConfig.INLINE_MAX_FLOPS);
        assertEquals(Set.of(Thread.currentThread().getName()), threadsOf(32, 2, 64, 50));
    }

    @Test
    void aLargeCallStillUsesThePool() {
        org.junit.jupiter.api.Assumptions.assumeTrue(CpuPool.threads() > 1, "one thread: nothing to spread");
        assertTrue(threadsOf(8, 256, 64, 3).stream().anyMatch(name -> name.startsWith("aule-cpu-")));
    }
}
