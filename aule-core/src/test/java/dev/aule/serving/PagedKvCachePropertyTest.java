package dev.aule.serving;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.testing.ForwardCase;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Random sequences of newSequence / append / fork / free against a plain model (each sequence's
 * tokens as lists of rows): after every operation the block accounting, the block tables and the
 * stored rows must agree with the model, a refused append must leave the cache byte for byte
 * unchanged, and now and then paged attention must equal the reference forward on the model's rows.
 */
class PagedKvCachePropertyTest {
    private static final int KV_HEADS = 2;
    private static final int D = 16;
    private static final int DV = 8;

    /** One sequence's tokens: key rows {@code [Hkv * D]} and value rows {@code [Hkv * Dv]}. */
    private record Tokens(List<float[]> keys, List<float[]> values) {
        Tokens copy() {
            return new Tokens(new ArrayList<>(keys), new ArrayList<>(values));
        }
    }

    private int refusals;
    private int attentions;
    private int copiesOnWrite;

    @Test
    void randomOperationsKeepTheCacheEqualToItsModel() {
        for (long seed = 1; seed <= 12; seed++) {
            run(seed);
        }
        // The operations must have reached the interesting states, or the test proves little.
        assertTrue(refusals > 5, "refused appends: " + refusals);
        assertTrue(attentions > 20, "attention checks: " + attentions);
        assertTrue(copiesOnWrite > 5, "copy-on-write appends: " + copiesOnWrite);
    }

    private void run(long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        int blockSize = new int[] {1, 4, 16}[(int) (seed % 3)];
        DType dtype = new DType[] {DType.F32, DType.F16, DType.BF16}[(int) (seed / 3 % 3)];
        int numBlocks = 8 + rnd.nextInt(24);
        PagedKvCache cache = PagedKvCache.create(dtype, numBlocks, blockSize, KV_HEADS, D, DV);
        Map<Integer, Tokens> model = new HashMap<>();
        String context = "seed " + seed + ", blocks " + numBlocks + " x " + blockSize + " " + dtype;
        for (int op = 0; op < 160; op++) {
            List<Integer> live = new ArrayList<>(model.keySet());
            live.sort(null);
            int choice = live.isEmpty() ? 0 : rnd.nextInt(10);
            String where = context + ", op " + op;
            if (choice == 0 || live.size() < 2 && choice < 3) {
                model.put(cache.newSequence(), new Tokens(new ArrayList<>(), new ArrayList<>()));
            } else if (choice <= 5) {
                appendChecked(cache, model, live.get(rnd.nextInt(live.size())), rnd, dtype, where);
            } else if (choice == 6) {
                int parent = live.get(rnd.nextInt(live.size()));
                int child = cache.fork(parent);
                model.put(child, model.get(parent).copy());
                // Divergent appends right after the fork: copy-on-write of a shared partial block.
                appendChecked(cache, model, child, rnd, dtype, where + " (child)");
                appendChecked(cache, model, parent, rnd, dtype, where + " (parent)");
            } else if (choice == 7) {
                int seq = live.get(rnd.nextInt(live.size()));
                cache.free(seq);
                model.remove(seq);
                assertThrows(IllegalArgumentException.class, () -> cache.length(seq));
            } else {
                attendChecked(cache, model, live, rnd, where);
            }
            checkInvariants(cache, model, where);
        }
        for (int seq : new ArrayList<>(model.keySet())) {
            cache.free(seq);
        }
        assertEquals(numBlocks, cache.usage().freeBlocks(), context + ": every block back after freeing all");
    }

    private void appendChecked(
            PagedKvCache cache, Map<Integer, Tokens> model, int seq, SplittableRandom rnd, DType dtype, String where) {
        int n = 1 + rnd.nextInt(rnd.nextInt(4) == 0 ? 3 * cache.blockSize() + 2 : 3);
        Tensor k = Tensors.random(rnd, dtype, 1, KV_HEADS, n, D);
        Tensor v = Tensors.random(rnd, dtype, 1, KV_HEADS, n, DV);
        int length = cache.length(seq);
        int[] table = cache.blockTable(seq);
        boolean sharedPartial = length % cache.blockSize() != 0 && cache.references(table[table.length - 1]) > 1;
        int needed = PagedKvCache.blocksFor(length + n, cache.blockSize()) - table.length + (sharedPartial ? 1 : 0);
        assertEquals(needed, cache.blocksNeeded(seq, n), where);
        if (needed > cache.usage().freeBlocks()) {
            byte[] keysBefore = cache.keyBlocks().memory().toArray(ValueLayout.JAVA_BYTE);
            byte[] valuesBefore = cache.valueBlocks().memory().toArray(ValueLayout.JAVA_BYTE);
            PagedKvCache.Usage usageBefore = cache.usage();
            Map<Integer, int[]> tablesBefore = tables(cache, model);
            KvCacheFullException e = assertThrows(KvCacheFullException.class, () -> cache.append(seq, k, v), where);
            assertTrue(e.getMessage().contains("free"), e.getMessage());
            assertEquals(usageBefore, cache.usage(), where);
            assertArrayEquals(keysBefore, cache.keyBlocks().memory().toArray(ValueLayout.JAVA_BYTE), where);
            assertArrayEquals(valuesBefore, cache.valueBlocks().memory().toArray(ValueLayout.JAVA_BYTE), where);
            tablesBefore.forEach((s, t) -> assertArrayEquals(t, cache.blockTable(s), where));
            assertEquals(length, cache.length(seq), where);
            refusals++;
            return;
        }
        cache.append(seq, k, v);
        copiesOnWrite += sharedPartial ? 1 : 0;
        Tokens tokens = model.get(seq);
        float[] kRows = k.toFloatArray();
        float[] vRows = v.toFloatArray();
        for (int t = 0; t < n; t++) {
            float[] keyRow = new float[KV_HEADS * D];
            float[] valueRow = new float[KV_HEADS * DV];
            for (int h = 0; h < KV_HEADS; h++) {
                System.arraycopy(kRows, (h * n + t) * D, keyRow, h * D, D);
                System.arraycopy(vRows, (h * n + t) * DV, valueRow, h * DV, DV);
            }
            tokens.keys().add(keyRow);
            tokens.values().add(valueRow);
        }
    }

    private static Map<Integer, int[]> tables(PagedKvCache cache, Map<Integer, Tokens> model) {
        Map<Integer, int[]> tables = new HashMap<>();
        for (int seq : model.keySet()) {
            tables.put(seq, cache.blockTable(seq));
        }
        return tables;
    }

    private static void checkInvariants(PagedKvCache cache, Map<Integer, Tokens> model, String where) {
        int[] references = new int[cache.numBlocks()];
        long tokens = 0;
        float[] row = new float[Math.max(D, DV)];
        for (Map.Entry<Integer, Tokens> e : model.entrySet()) {
            int seq = e.getKey();
            Tokens expected = e.getValue();
            int length = expected.keys().size();
            tokens += length;
            assertEquals(length, cache.length(seq), where + " length of " + seq);
            int[] table = cache.blockTable(seq);
            assertEquals(PagedKvCache.blocksFor(length, cache.blockSize()), table.length, where + " blocks of " + seq);
            for (int block : table) {
                references[block]++;
            }
            for (int j = 0; j < length; j++) {
                int block = table[j / cache.blockSize()];
                int slot = j % cache.blockSize();
                for (int h = 0; h < KV_HEADS; h++) {
                    cache.keyBlocks().readRow(block, h, slot, row, 0);
                    if (!Arrays.equals(row, 0, D, expected.keys().get(j), h * D, (h + 1) * D)) {
                        fail(where + ": key " + j + " head " + h + " of sequence " + seq
                                + " differs from what was appended");
                    }
                    cache.valueBlocks().readRow(block, h, slot, row, 0);
                    if (!Arrays.equals(row, 0, DV, expected.values().get(j), h * DV, (h + 1) * DV)) {
                        fail(where + ": value " + j + " head " + h + " of sequence " + seq + " differs");
                    }
                }
            }
        }
        int used = 0;
        for (int block = 0; block < references.length; block++) {
            assertEquals(references[block], cache.references(block), where + " references of block " + block);
            used += references[block] > 0 ? 1 : 0;
        }
        PagedKvCache.Usage usage = cache.usage();
        assertEquals(used, usage.usedBlocks(), where);
        assertEquals(cache.numBlocks() - used, usage.freeBlocks(), where);
        assertEquals(model.size(), usage.sequences(), where);
        assertEquals(tokens, usage.tokens(), where);
        assertEquals(used * usage.bytesPerBlock(), usage.bytesUsed(), where);
        assertEquals(
                (long) cache.blockSize() * KV_HEADS * (D + DV) * cache.dtype().byteSize(), usage.bytesPerBlock());
    }

    private void attendChecked(
            PagedKvCache cache, Map<Integer, Tokens> model, List<Integer> live, SplittableRandom rnd, String where) {
        int batch = 1 + rnd.nextInt(Math.min(3, live.size()));
        int[] seqs = new int[batch];
        List<Integer> pool = new ArrayList<>(live);
        for (int b = 0; b < batch; b++) {
            seqs[b] = pool.remove(rnd.nextInt(pool.size()));
        }
        int group = 1 + rnd.nextInt(2);
        int queries = rnd.nextInt(3) == 0 ? 3 : 1;
        Tensor q = Tensors.random(rnd, DType.F32, batch, KV_HEADS * group, queries, D);
        AttentionOptions options = ForwardCase.randomOptions(rnd, KV_HEADS * group, 40);
        Tensor out = Oracle.poisoned(DType.F32, batch, q.heads(), queries, DV);
        Tensor lse = Oracle.poisoned(DType.F32, batch, q.heads(), queries, 1);
        cache.attentionInto(seqs, q, out, lse, options);
        for (int b = 0; b < batch; b++) {
            Tokens tokens = model.get(seqs[b]);
            Tensor k = stack(tokens.keys(), D);
            Tensor v = stack(tokens.values(), DV);
            String context = where + " attention of sequence " + seqs[b] + " ("
                    + tokens.keys().size() + " tokens) " + options;
            Oracle.assertRowsMatch(out, lse, q, b, 0, queries, k, v, DV, options, context);
        }
        attentions++;
        assertEquals("cpu", Backends.selected().name(), "the cache's attention ran on the cpu backend");
    }

    /** The model's rows of one sequence as a contiguous {@code [1, Hkv, len, dim]} tensor; null when empty. */
    private static Tensor stack(List<float[]> rows, int dim) {
        if (rows.isEmpty()) {
            return null;
        }
        Tensor t = Tensor.allocate(DType.F32, 1, KV_HEADS, rows.size(), dim);
        for (int j = 0; j < rows.size(); j++) {
            for (int h = 0; h < KV_HEADS; h++) {
                t.writeRow(0, h, j, rows.get(j), h * dim);
            }
        }
        return t;
    }

    @Test
    void forkSharesBlocksAndCopiesOnlyTheSharedPartialBlockOnWrite() {
        SplittableRandom rnd = new SplittableRandom(9);
        PagedKvCache cache = PagedKvCache.create(DType.F32, 16, 4, 1, 8);
        int prompt = cache.newSequence();
        cache.append(prompt, Tensors.random(rnd, DType.F32, 1, 1, 10, 8), Tensors.random(rnd, DType.F32, 1, 1, 10, 8));
        int[] shared = cache.blockTable(prompt);
        assertEquals(3, cache.usage().usedBlocks());
        int child = cache.fork(prompt);
        assertEquals(3, cache.usage().usedBlocks(), "a fork takes no block");
        assertArrayEquals(shared, cache.blockTable(child));
        cache.append(child, Tensors.random(rnd, DType.F32, 1, 1, 1, 8), Tensors.random(rnd, DType.F32, 1, 1, 1, 8));
        int[] childTable = cache.blockTable(child);
        assertEquals(shared[0], childTable[0], "full blocks stay shared");
        assertEquals(shared[1], childTable[1], "full blocks stay shared");
        assertTrue(childTable[2] != shared[2], "the partial block was copied");
        assertArrayEquals(shared, cache.blockTable(prompt), "the parent keeps its blocks");
        assertEquals(4, cache.usage().usedBlocks());
        cache.append(prompt, Tensors.random(rnd, DType.F32, 1, 1, 1, 8), Tensors.random(rnd, DType.F32, 1, 1, 1, 8));
        assertArrayEquals(shared, cache.blockTable(prompt), "no longer shared: written in place");
        cache.free(prompt);
        assertEquals(3, cache.usage().usedBlocks(), "the prompt's own partial block is freed, shared ones kept");
        assertThrows(IllegalArgumentException.class, () -> cache.fork(prompt));
        assertThrows(IllegalArgumentException.class, () -> cache.free(prompt));
    }
}
