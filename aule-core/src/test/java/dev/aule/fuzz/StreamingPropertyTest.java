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
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * jqwik properties of StreamingLLM caches over random append sizes: the kept positions are the policy's, the
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

    @Property(tries = 60)
    void pagedStreamingKeepsThePolicysTokensInBoundedBlocks(
            @ForAll @IntRange(min = 0, max = 9) int sinkTokens,
            @ForAll @IntRange(min = 1, max = 24) int window,
            @ForAll @IntRange(min = 1, max = 8) int blockSize,
            @ForAll @Size(min = 1, max = 40) List<@IntRange(min = 1, max = 24) Integer> appends) {
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
            assertEquals(expected.size(), cache.keptTokens(seq));
            int[] table = cache.blockTable(seq);
            assertEquals(PagedKvCache.blocksFor(expected.size(), blockSize), table.length);
            assertEquals(table.length, cache.usage().usedBlocks(), "every used block is the sequence's");
            float[] row = new float[D];
            for (int j = 0; j < expected.size(); j++) {
                cache.keyBlocks().readRow(table[j / blockSize], 0, j % blockSize, row, 0);
                assertEquals((float) expected.get(j), row[0], "kept token " + j);
            }
        }
        assertEquals(total, cache.length(seq));
        cache.free(seq);
        assertEquals(cache.numBlocks(), cache.usage().freeBlocks());
    }

    @Property(tries = 40)
    void contiguousStreamingAttendsToExactlyTheSinksAndTheWindow(
            @ForAll @IntRange(min = 0, max = 6) int sinkTokens,
            @ForAll @IntRange(min = 1, max = 16) int window,
            @ForAll @Size(min = 1, max = 20) List<@IntRange(min = 1, max = 20) Integer> appends,
            @ForAll long seed) {
        StreamingPolicy policy = new StreamingPolicy(sinkTokens, window);
        KvCache cache = KvCache.allocate(DType.F32, 1, KV_HEADS, sinkTokens + window, D, D);
        cache.enableStreaming(policy);
        SplittableRandom rnd = new SplittableRandom(seed);
        int total = 0;
        for (int n : appends) {
            cache.append(tokens(total, n), tokens(total, n));
            total += n;
            int kept = Math.min(total, sinkTokens) + Math.min(window, Math.max(0, total - sinkTokens));
            assertEquals(kept, cache.length(0));
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
