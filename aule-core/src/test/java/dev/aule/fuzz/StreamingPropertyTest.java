package dev.aule.fuzz;

import dev.aule.AttentionOptions;
import dev.aule.AttentionResult;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.serving.KvCache;
import dev.aule.serving.PagedKvCache;
import dev.aule.serving.StreamingPolicy;
import dev.aule.spi.Accuracy;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Properties of StreamingLLM caches over random policies and append sizes (each case drawn from its own seed,
 * which the failure message names): the kept positions are the policy's, the
 * rows are the tokens appended at them, attention equals the reference forward over them, and a paged pool of
 * {@link StreamingPolicy#maxBlocks} blocks never runs out (its used blocks are the table's, all back on free).
 */
class StreamingPropertyTest {
    private static final int KV_HEADS = 1;
    private static final int D = 4;

    /** Token {@code p}'s key row: its position in every element, so a row says which token it is. */
    private static Tensor tokens(int from, int n) {
        Tensor t = Tensor.allocate(DType.F32, 1, KV_HEADS, n, D);
        for (int s = 0; s < n; s++) {
            for (int x = 0; x < D; x++) {
                t.set(0, 0, s, x, from + s + 0.25f * x);
            }
        }
        return t;
    }

    /** {@code count} append sizes in {@code [1, max]}, short runs of 1 (decode) among longer chunks. */
    private static List<Integer> appends(SplittableRandom rnd, int count, int max) {
        List<Integer> sizes = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            sizes.add(rnd.nextInt(3) == 0 ? 1 + rnd.nextInt(max) : 1);
        }
        return sizes;
    }

    @Test
    void pagedStreamingKeepsThePolicysTokensInBoundedBlocks() {
        for (long seed = 1; seed <= 80; seed++) {
            SplittableRandom rnd = new SplittableRandom(seed);
            pagedCase(rnd.nextInt(10), 1 + rnd.nextInt(24), 1 + rnd.nextInt(8), appends(rnd, 1 + rnd.nextInt(60), 24));
        }
    }

    private static void pagedCase(int sinkTokens, int window, int blockSize, List<Integer> appends) {
        StreamingPolicy policy = new StreamingPolicy(sinkTokens, window);
        PagedKvCache cache = PagedKvCache.create(DType.F32, policy.maxBlocks(blockSize), blockSize, KV_HEADS, D);
        int seq = cache.newSequence(policy);
        int total = 0;
        int sinkEnd = policy.sinkBlocks(blockSize) * blockSize;
        for (int size : appends) {
            int n = Math.min(size, window); // the documented chunk bound
            cache.append(seq, tokens(total, n), tokens(total, n)); // never KvCacheFullException: bounded
            total += n;
            List<Integer> expected = new ArrayList<>();
            for (int p = 0; p < total; p++) {
                if (p < sinkEnd || p / blockSize * blockSize + blockSize > total - window) {
                    expected.add(p);
                }
            }
            String where = new StreamingPolicy(sinkTokens, window) + " blockSize " + blockSize + " appends " + appends;
            assertEquals(expected.size(), cache.keptTokens(seq), where);
            int[] table = cache.blockTable(seq);
            assertEquals(PagedKvCache.blocksFor(expected.size(), blockSize), table.length);
            assertEquals(table.length, cache.usage().usedBlocks(), "every used block is the sequence's");
            float[] row = new float[D];
            for (int j = 0; j < expected.size(); j++) {
                cache.keyBlocks().readRow(table[j / blockSize], 0, j % blockSize, row, 0);
                assertEquals((float) expected.get(j), row[0], "kept token " + j + ": " + where);
            }
        }
        assertEquals(total, cache.length(seq));
        cache.free(seq);
        assertEquals(cache.numBlocks(), cache.usage().freeBlocks());
    }

    @Test
    void contiguousStreamingAttendsToExactlyTheSinksAndTheWindow() {
        for (long seed = 1; seed <= 60; seed++) {
            SplittableRandom rnd = new SplittableRandom(1000 + seed);
            contiguousCase(rnd.nextInt(7), 1 + rnd.nextInt(16), appends(rnd, 1 + rnd.nextInt(30), 20), seed);
        }
    }

    private static void contiguousCase(int sinkTokens, int window, List<Integer> appends, long seed) {
        StreamingPolicy policy = new StreamingPolicy(sinkTokens, window);
        KvCache cache = KvCache.allocate(DType.F32, 1, KV_HEADS, sinkTokens + window, D, D);
        cache.enableStreaming(policy);
        SplittableRandom rnd = new SplittableRandom(seed);
        int total = 0;
        for (int n : appends) {
            cache.append(tokens(total, n), tokens(total, n));
            total += n;
            int kept = Math.min(total, sinkTokens) + Math.min(window, Math.max(0, total - sinkTokens));
            assertEquals(kept, cache.length(0), policy + " appends " + appends);
            assertEquals(total, cache.position(0));
            float[] row = new float[D];
            int j = 0;
            for (int p = 0; p < total; p++) {
                if (p < sinkTokens || p >= total - window) {
                    cache.keys().readRow(0, 0, j++, row, 0);
                    assertEquals((float) p, row[0]);
                }
            }
        }
        Tensor q = Tensors.random(rnd, DType.F32, 1, 2, 1, D);
        AttentionOptions causal =
                AttentionOptions.builder().causal(true).scale(0.05f).build();
        AttentionResult r = cache.attention(q, causal);
        Tensor k =
                Tensor.of(cache.keys().sequence(0, 0, cache.length(0)).toFloatArray(), 1, KV_HEADS, cache.length(0), D);
        Tensor out = Tensor.allocate(DType.F32, 1, 2, 1, D);
        Tensor lse = Tensor.allocate(DType.F32, 1, 2, 1, 1);
        Backends.get("reference").forward(q, k, k, out, lse, causal);
        assertTrue(Accuracy.relativeError(r.out(), out) < 1e-5);
        assertArrayEquals(lse.toFloatArray(), r.lse().toFloatArray(), 1e-4f);
    }
}
