package dev.aule.serving;

import dev.aule.AttentionOptions;
import dev.aule.AttentionResult;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.PagedKv;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * StreamingLLM sink tokens with a sliding window in {@link PagedKvCache}: random appends, forks and frees against a
 * model, a plain (never dropping) copy of every sequence in a second cache. After every operation each sequence
 * keeps exactly the positions the policy says, stored as the plain copy stores them (RoPE at the original
 * positions), the reference counts and free blocks agree with the tables, and attention equals the reference
 * forward over the kept tokens.
 */
class StreamingCacheTest {
    private static final int KV_HEADS = 2;
    private static final int D = 8;
    private static final int DV = 4;

    /** Whether position {@code p} of a sequence of {@code length} tokens is kept (the policy, in whole blocks). */
    static boolean kept(int p, int length, StreamingPolicy policy, int blockSize) {
        if (policy == null) {
            return true;
        }
        int sinkEnd = policy.sinkBlocks(blockSize) * blockSize;
        return p < sinkEnd || p / blockSize * blockSize + blockSize > length - policy.window();
    }

    /** The kept rows of a sequence read from its blocks in table order, {@code [keptTokens][Hkv * dim]}. */
    private static List<float[]> keptRows(PagedKvCache cache, int seq, boolean keys) {
        Tensor pool = keys ? cache.keyBlocks() : cache.valueBlocks();
        int[] table = cache.blockTable(seq);
        List<float[]> rows = new ArrayList<>();
        for (int j = 0; j < cache.keptTokens(seq); j++) {
            float[] row = new float[pool.heads() * pool.headDim()];
            for (int h = 0; h < pool.heads(); h++) {
                pool.readRow(table[j / cache.blockSize()], h, j % cache.blockSize(), row, h * pool.headDim());
            }
            rows.add(row);
        }
        return rows;
    }

    /** Rows of the plain copy at the positions a sequence of its length keeps under {@code policy}. */
    private static List<float[]> expectedRows(PagedKvCache plain, int seq, StreamingPolicy policy, boolean keys) {
        Tensor pool = keys ? plain.keyBlocks() : plain.valueBlocks();
        int[] table = plain.blockTable(seq);
        int length = plain.length(seq);
        List<float[]> rows = new ArrayList<>();
        for (int p = 0; p < length; p++) {
            if (kept(p, length, policy, plain.blockSize())) {
                float[] row = new float[pool.heads() * pool.headDim()];
                for (int h = 0; h < pool.heads(); h++) {
                    pool.readRow(table[p / plain.blockSize()], h, p % plain.blockSize(), row, h * pool.headDim());
                }
                rows.add(row);
            }
        }
        return rows;
    }

    private static Tensor asTensor(List<float[]> rows, int dim) {
        Tensor t = Tensor.allocate(DType.F32, 1, KV_HEADS, rows.size(), dim);
        for (int j = 0; j < rows.size(); j++) {
            for (int h = 0; h < KV_HEADS; h++) {
                t.writeRow(0, h, j, rows.get(j), h * dim);
            }
        }
        return t;
    }

    private int releases;
    private int attentionChecks;
    private int forks;

    @Test
    void randomAppendsKeepThePolicysTokensAndTheAccounting() {
        for (long seed = 1; seed <= 16; seed++) {
            run(seed);
        }
        assertTrue(releases > 50, "blocks released by windows: " + releases);
        assertTrue(attentionChecks > 30, "attention checks: " + attentionChecks);
        assertTrue(forks > 5, "forks of streaming sequences: " + forks);
    }

    private void run(long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        int blockSize = new int[] {1, 3, 4, 8}[(int) (seed % 4)];
        DType dtype = seed % 3 == 0 ? DType.BF16 : DType.F32;
        Rope rope = seed % 2 == 0 ? Rope.of(D, 4096, 10000, Rope.Style.NEOX) : null;
        PagedKvCache cache = PagedKvCache.create(dtype, 64, blockSize, KV_HEADS, D, DV);
        PagedKvCache plain = PagedKvCache.create(dtype, 2048, blockSize, KV_HEADS, D, DV);
        Map<Integer, Integer> twin = new HashMap<>(); // streaming id -> plain id
        Map<Integer, StreamingPolicy> policies = new HashMap<>();
        for (int op = 0; op < 120; op++) {
            List<Integer> live = new ArrayList<>(twin.keySet());
            live.sort(null);
            int choice = live.isEmpty() ? 0 : rnd.nextInt(12);
            String where = "seed " + seed + " op " + op + " blockSize " + blockSize;
            if (choice == 0 && live.size() < 4) {
                StreamingPolicy policy =
                        rnd.nextInt(5) == 0 ? null : new StreamingPolicy(rnd.nextInt(10), 1 + rnd.nextInt(20));
                int id = policy == null ? cache.newSequence() : cache.newSequence(policy);
                twin.put(id, plain.newSequence());
                policies.put(id, policy);
            } else if (choice <= 7 && !live.isEmpty()) {
                int seq = live.get(rnd.nextInt(live.size()));
                StreamingPolicy policy = policies.get(seq);
                int max = policy == null ? 6 : Math.min(policy.window(), 12);
                int n = 1 + rnd.nextInt(max);
                Tensor k = Tensors.random(rnd, DType.F32, 1, KV_HEADS, n, D);
                Tensor v = Tensors.random(rnd, DType.F32, 1, KV_HEADS, n, DV);
                int before = cache.blockTable(seq).length;
                int freeBefore = cache.usage().freeBlocks();
                int needed = cache.blocksNeeded(seq, n);
                try {
                    cache.append(new int[] {seq}, k, v, rope);
                } catch (KvCacheFullException e) {
                    assertTrue(needed > freeBefore, "refused though " + needed + " <= " + freeBefore + ": " + where);
                    continue;
                }
                assertTrue(
                        freeBefore - cache.usage().freeBlocks() <= needed,
                        "took more than blocksNeeded said: " + where);
                plain.append(new int[] {twin.get(seq)}, k, v, rope);
                releases +=
                        Math.max(0, before + (int) Math.ceil(n / (double) blockSize) - cache.blockTable(seq).length);
            } else if (choice <= 9 && !live.isEmpty() && live.size() < 5) {
                int parent = live.get(rnd.nextInt(live.size()));
                int child = cache.fork(parent);
                twin.put(child, plain.fork(twin.get(parent)));
                policies.put(child, policies.get(parent));
                forks += policies.get(parent) == null ? 0 : 1;
            } else if (!live.isEmpty()) {
                int seq = live.get(rnd.nextInt(live.size()));
                cache.free(seq);
                plain.free(twin.remove(seq));
                policies.remove(seq);
            }
            check(cache, plain, twin, policies, rnd, where);
        }
    }

    private void check(
            PagedKvCache cache,
            PagedKvCache plain,
            Map<Integer, Integer> twin,
            Map<Integer, StreamingPolicy> policies,
            SplittableRandom rnd,
            String where) {
        int[] refs = new int[cache.numBlocks()];
        long tokens = 0;
        for (Map.Entry<Integer, Integer> e : twin.entrySet()) {
            int seq = e.getKey();
            StreamingPolicy policy = policies.get(seq);
            int length = plain.length(e.getValue());
            assertEquals(length, cache.length(seq), where);
            int expectedKept = 0;
            for (int p = 0; p < length; p++) {
                expectedKept += kept(p, length, policy, cache.blockSize()) ? 1 : 0;
            }
            assertEquals(expectedKept, cache.keptTokens(seq), "kept tokens: " + where);
            int[] table = cache.blockTable(seq);
            assertEquals(PagedKvCache.blocksFor(expectedKept, cache.blockSize()), table.length, "blocks: " + where);
            if (policy != null) {
                assertTrue(table.length <= policy.maxBlocks(cache.blockSize()), "bounded: " + where);
            }
            for (int block : table) {
                refs[block]++;
            }
            tokens += expectedKept;
            List<float[]> keys = keptRows(cache, seq, true);
            List<float[]> expectedKeys = expectedRows(plain, e.getValue(), policy, true);
            for (int j = 0; j < keys.size(); j++) {
                assertArrayEquals(expectedKeys.get(j), keys.get(j), "key " + j + ": " + where);
            }
            List<float[]> values = keptRows(cache, seq, false);
            List<float[]> expectedValues = expectedRows(plain, e.getValue(), policy, false);
            for (int j = 0; j < values.size(); j++) {
                assertArrayEquals(expectedValues.get(j), values.get(j), "value " + j + ": " + where);
            }
            if (expectedKept > 0 && rnd.nextInt(3) == 0) {
                checkAttention(cache, seq, asTensor(expectedKeys, D), asTensor(expectedValues, DV), rnd, where);
            }
        }
        int used = 0;
        for (int b = 0; b < cache.numBlocks(); b++) {
            assertEquals(refs[b], cache.references(b), "references of block " + b + ": " + where);
            used += refs[b] > 0 ? 1 : 0;
        }
        assertEquals(used, cache.usage().usedBlocks(), where);
        assertEquals(cache.numBlocks() - used, cache.usage().freeBlocks(), where);
        assertEquals(tokens, cache.usage().tokens(), where);
    }

    private void checkAttention(PagedKvCache cache, int seq, Tensor k, Tensor v, SplittableRandom rnd, String where) {
        int rows = 1 + rnd.nextInt(Math.min(3, k.seqLen()));
        AttentionOptions options = AttentionOptions.builder().causal(true).build();
        Tensor q = Tensors.random(rnd, DType.F32, 1, KV_HEADS * 2, rows, D);
        AttentionResult expected = Oracle.forward(q, k, v, DV, options);
        AttentionResult viaCache = cache.attention(new int[] {seq}, q, options);
        Oracle.assertMatches(viaCache.out(), viaCache.lse(), expected, q, k, options, "cpu " + where);
        AttentionResult viaVarlen = cache.attentionVarlen(new int[] {seq}, q, new int[] {0, rows}, options);
        Oracle.assertMatches(viaVarlen.out(), viaVarlen.lse(), expected, q, k, options, "varlen " + where);
        Tensor out = Tensor.allocate(DType.F32, 1, q.heads(), rows, DV);
        Tensor lse = Tensor.allocate(DType.F32, 1, q.heads(), rows, 1);
        Backends.get("reference")
                .forwardPaged(
                        q,
                        new PagedKv(
                                cache.keyBlocks(), cache.valueBlocks(), new int[][] {cache.blockTable(seq)}, new int[] {
                                    cache.keptTokens(seq)
                                }),
                        out,
                        lse,
                        options);
        Oracle.assertMatches(out, lse, expected, q, k, options, "reference " + where);
        attentionChecks++;
    }

    @Test
    void aLongGenerationRunsInAPoolOfMaxBlocks() {
        for (int blockSize : new int[] {1, 4, 16}) {
            StreamingPolicy policy = new StreamingPolicy(4, 24);
            PagedKvCache cache = PagedKvCache.create(DType.F32, policy.maxBlocks(blockSize), blockSize, 1, 8);
            int seq = cache.newSequence(policy);
            SplittableRandom rnd = new SplittableRandom(blockSize);
            int appended = 0;
            int peak = 0;
            while (appended < 600) {
                int n = 1 + rnd.nextInt(rnd.nextInt(8) == 0 ? policy.window() : 2);
                cache.append(
                        seq, Tensors.random(rnd, DType.F32, 1, 1, n, 8), Tensors.random(rnd, DType.F32, 1, 1, n, 8));
                appended += n;
                peak = Math.max(peak, cache.usage().usedBlocks());
            }
            assertEquals(appended, cache.length(seq));
            assertTrue(peak <= policy.maxBlocks(blockSize), "peak " + peak);
            assertTrue(
                    cache.keptTokens(seq) >= 4 + 24 - 1 && cache.keptTokens(seq) < 600,
                    "kept " + cache.keptTokens(seq));
            cache.free(seq);
            assertEquals(cache.numBlocks(), cache.usage().freeBlocks(), "all blocks back");
        }
    }

    @Test
    void aContiguousStreamingCacheKeepsExactlyTheSinksAndTheWindow() {
        int checks = 0;
        for (long seed = 1; seed <= 12; seed++) {
            SplittableRandom rnd = new SplittableRandom(500 + seed);
            int batch = 1 + rnd.nextInt(3);
            StreamingPolicy policy = new StreamingPolicy(rnd.nextInt(6), 1 + rnd.nextInt(14));
            DType dtype = seed % 3 == 0 ? DType.F16 : DType.F32;
            Rope rope = seed % 2 == 0 ? Rope.of(D, 4096, 10000, Rope.Style.GPTJ) : null;
            KvCache cache = KvCache.allocate(
                    dtype, batch, KV_HEADS, policy.sinkTokens() + policy.window() + rnd.nextInt(3), D, DV);
            cache.enableStreaming(policy);
            KvCache plain = KvCache.allocate(dtype, batch, KV_HEADS, 4096, D, DV);
            // The model: each sequence's kept positions; the plain twin holds every position's rows.
            List<List<Integer>> model = new ArrayList<>();
            for (int b = 0; b < batch; b++) {
                model.add(new ArrayList<>());
            }
            for (int op = 0; op < 40; op++) {
                String where = "seed " + seed + " op " + op + " " + policy;
                if (rnd.nextInt(8) == 0) { // drop the newest kept tokens of one sequence
                    int b = rnd.nextInt(batch);
                    int length = rnd.nextInt(cache.length(b) + 1);
                    List<Integer> kept = model.get(b);
                    int total = length == 0 ? 0 : kept.get(length - 1) + 1;
                    kept.subList(length, kept.size()).clear();
                    cache.truncate(b, length);
                    plain.truncate(b, total);
                    assertEquals(total, cache.position(b), where);
                    continue;
                }
                int n = 1 + rnd.nextInt(Math.max(1, policy.window() + 4));
                int[] counts = new int[batch];
                for (int b = 0; b < batch; b++) {
                    counts[b] = rnd.nextInt(n + 1);
                }
                Tensor k = Tensors.random(rnd, DType.F32, batch, KV_HEADS, n, D);
                Tensor v = Tensors.random(rnd, DType.F32, batch, KV_HEADS, n, DV);
                cache.append(k, v, counts, rope);
                plain.append(k, v, counts, rope);
                for (int b = 0; b < batch; b++) {
                    int total = plain.length(b);
                    assertEquals(total, cache.position(b), where);
                    List<Integer> keptPositions = model.get(b);
                    for (int p = total - counts[b]; p < total; p++) {
                        keptPositions.add(p);
                    }
                    keptPositions.removeIf(p -> p >= policy.sinkTokens() && p < total - policy.window());
                    assertEquals(keptPositions.size(), cache.length(b), "kept: " + where);
                    Tensor expectedK = Tensor.allocate(DType.F32, 1, KV_HEADS, Math.max(1, keptPositions.size()), D);
                    Tensor expectedV = Tensor.allocate(DType.F32, 1, KV_HEADS, Math.max(1, keptPositions.size()), DV);
                    float[] kr = new float[D];
                    float[] vr = new float[DV];
                    float[] got = new float[D];
                    for (int j = 0; j < keptPositions.size(); j++) {
                        for (int h = 0; h < KV_HEADS; h++) {
                            plain.keys().readRow(b, h, keptPositions.get(j), kr, 0);
                            plain.values().readRow(b, h, keptPositions.get(j), vr, 0);
                            cache.keys().readRow(b, h, j, got, 0);
                            assertArrayEquals(kr, got, "key " + j + ": " + where);
                            expectedK.writeRow(0, h, j, kr, 0);
                            expectedV.writeRow(0, h, j, vr, 0);
                        }
                    }
                    if (!keptPositions.isEmpty() && rnd.nextInt(3) == 0) {
                        Tensor q = Tensors.random(rnd, DType.F32, batch, 2 * KV_HEADS, 1, D);
                        AttentionOptions causal =
                                AttentionOptions.builder().causal(true).build();
                        AttentionResult r = cache.attention(q, causal);
                        Oracle.assertRowsMatch(r.out(), r.lse(), q, b, 0, 1, expectedK, expectedV, DV, causal, where);
                        checks++;
                    }
                }
            }
        }
        assertTrue(checks > 20, "attention checks: " + checks);
    }

    @Test
    void badPoliciesAreRejected() {
        KvCache full = KvCache.allocate(DType.F32, 1, 1, 8, 8);
        assertThrows(IllegalArgumentException.class, () -> full.enableStreaming(new StreamingPolicy(4, 5)));
        full.append(Tensor.allocate(DType.F32, 1, 1, 1, 8), Tensor.allocate(DType.F32, 1, 1, 1, 8));
        assertThrows(IllegalArgumentException.class, () -> full.enableStreaming(new StreamingPolicy(1, 2)));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new StreamingPolicy(-1, 4))
                .getMessage()
                .startsWith("sinkTokens, window"));
        assertThrows(IllegalArgumentException.class, () -> new StreamingPolicy(4, 0));
        PagedKvCache cache = PagedKvCache.create(DType.F32, 4, 4, 1, 8);
        assertThrows(NullPointerException.class, () -> cache.newSequence(null));
        assertThrows(IllegalArgumentException.class, () -> cache.keptTokens(42));
        // More than the pool: refused before anything changes.
        int seq = cache.newSequence(new StreamingPolicy(0, 32));
        SplittableRandom rnd = new SplittableRandom(1);
        assertThrows(
                KvCacheFullException.class,
                () -> cache.append(
                        seq, Tensors.random(rnd, DType.F32, 1, 1, 17, 8), Tensors.random(rnd, DType.F32, 1, 1, 17, 8)));
        assertEquals(0, cache.length(seq));
        assertEquals(4, cache.usage().freeBlocks());
    }
}
