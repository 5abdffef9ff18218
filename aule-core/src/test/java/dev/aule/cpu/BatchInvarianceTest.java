package dev.aule.cpu;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.PackedSequences;
import dev.aule.spi.PagedKv;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/**
 * A sequence's forward, cached, paged and packed results are bitwise the same alone and inside batches of any
 * composition (other sequences of other lengths before and after it), and beside concurrent calls: the tile
 * rows, the key splits and the merge order come from the sequence's own shape. The shapes are the ones whose
 * decisions used to follow the batch: decode against a few thousand keys (split or not), a short GQA decode
 * tile, and a short prefill whose tile rows were halved for a lone sequence but not in a batch.
 */
class BatchInvarianceTest {
    private static final int QUERY_HEADS = 8;
    private static final int KV_HEADS = 2;
    private static final int HEAD_DIM = 64;
    private static final int BLOCK_SIZE = 16;
    private static final int[][] SHAPES = {{1, 3000}, {5, 2100}, {100, 333}}; // {Sq, Sk}
    private static final AttentionOptions[] OPTIONS = {
        AttentionOptions.defaults(),
        AttentionOptions.builder().causal(true).build(),
        AttentionOptions.builder().window(150, 20).build(),
        AttentionOptions.builder()
                .causal(true)
                .softcap(4f)
                .alibiSlopes(new float[] {0.01f, 0.02f, 0.03f, 0.05f, 0.08f, 0.1f, 0.2f, 0.4f})
                .build()
    };

    private final CpuBackend cpu = new CpuBackend();

    /** One sequence's inputs, batch-1 tensors (null where it has no rows or no keys). */
    private record Sequence(int queryLen, int keyLen, Tensor q, Tensor k, Tensor v) {
        static Sequence random(SplittableRandom rnd, int queryLen, int keyLen) {
            return new Sequence(
                    queryLen,
                    keyLen,
                    queryLen == 0 ? null : Tensors.random(rnd, DType.F32, 1, QUERY_HEADS, queryLen, HEAD_DIM),
                    keyLen == 0 ? null : Tensors.random(rnd, DType.F32, 1, KV_HEADS, keyLen, HEAD_DIM),
                    keyLen == 0 ? null : Tensors.random(rnd, DType.F32, 1, KV_HEADS, keyLen, HEAD_DIM));
        }
    }

    /** A sequence's output and log-sum-exp as raw bits. */
    private record Bits(int[] out, int[] lse) {
        static Bits of(Tensor out, Tensor lse) {
            return new Bits(bits(out), bits(lse));
        }

        void assertSame(Bits actual, String where) {
            assertArrayEquals(out, actual.out, "out " + where);
            assertArrayEquals(lse, actual.lse, "lse " + where);
        }
    }

    @Test
    void aBatchEntryOfTheForwardHasTheBitsOfItsForwardAlone() {
        SplittableRandom rnd = new SplittableRandom(41);
        int[][] placements = {{2, 0}, {5, 3}, {9, 8}}; // {batch, index of the sequence}
        for (int[] shape : SHAPES) {
            Sequence target = Sequence.random(rnd, shape[0], shape[1]);
            for (AttentionOptions options : OPTIONS) {
                Bits alone = forward(target.q(), target.k(), target.v(), options, 0);
                for (int[] placement : placements) {
                    int batch = placement[0];
                    int at = placement[1];
                    Tensor q = Tensors.random(rnd, DType.F32, batch, QUERY_HEADS, shape[0], HEAD_DIM);
                    Tensor k = Tensors.random(rnd, DType.F32, batch, KV_HEADS, shape[1], HEAD_DIM);
                    Tensor v = Tensors.random(rnd, DType.F32, batch, KV_HEADS, shape[1], HEAD_DIM);
                    place(target.q(), q, at, 0);
                    place(target.k(), k, at, 0);
                    place(target.v(), v, at, 0);
                    String where = Arrays.toString(shape) + " at " + at + " of batch " + batch + " " + options;
                    alone.assertSame(forward(q, k, v, options, at), where);
                }
            }
        }
    }

    @Test
    void aCachedSequenceHasTheBitsOfItsCallAlone() {
        SplittableRandom rnd = new SplittableRandom(42);
        for (int[] shape : SHAPES) {
            Sequence target = Sequence.random(rnd, shape[0], shape[1]);
            int len = shape[1];
            int[][] compositions = {{50, len}, {len, 0, 4000, 1}, {3000, 17, 900, len, 2}};
            for (AttentionOptions options : OPTIONS) {
                Bits alone = cached(target.q(), target.k(), target.v(), new int[] {len}, options, 0);
                for (int[] lens : compositions) {
                    int at = indexOf(lens, len);
                    int capacity = Arrays.stream(lens).max().orElseThrow();
                    Tensor q = Tensors.random(rnd, DType.F32, lens.length, QUERY_HEADS, shape[0], HEAD_DIM);
                    Tensor kCache = Tensors.random(rnd, DType.F32, lens.length, KV_HEADS, capacity, HEAD_DIM);
                    Tensor vCache = Tensors.random(rnd, DType.F32, lens.length, KV_HEADS, capacity, HEAD_DIM);
                    place(target.q(), q, at, 0);
                    place(target.k(), kCache, at, 0);
                    place(target.v(), vCache, at, 0);
                    String where =
                            Arrays.toString(shape) + " in cache lengths " + Arrays.toString(lens) + " " + options;
                    alone.assertSame(cached(q, kCache, vCache, lens, options, at), where);
                }
            }
        }
    }

    @Test
    void aPagedSequenceHasTheBitsOfItsCallAlone() {
        SplittableRandom rnd = new SplittableRandom(43);
        for (int[] shape : SHAPES) {
            Sequence target = Sequence.random(rnd, shape[0], shape[1]);
            int len = shape[1];
            int[][] compositions = {{len, 700}, {1, 0, len, 4000}, {2500, len, 33}};
            for (int[] lens : compositions) {
                int at = indexOf(lens, len);
                int[][] tables = new int[lens.length][];
                int numBlocks = 0;
                for (int b = 0; b < lens.length; b++) {
                    tables[b] = new int[(lens[b] + BLOCK_SIZE - 1) / BLOCK_SIZE];
                    numBlocks += tables[b].length;
                }
                int[] blocks = shuffled(rnd, numBlocks); // every sequence's blocks scattered over the pool
                for (int b = 0, next = 0; b < lens.length; b++) {
                    for (int i = 0; i < tables[b].length; i++) {
                        tables[b][i] = blocks[next++];
                    }
                }
                Tensor kPool = Tensors.random(rnd, DType.F32, numBlocks, KV_HEADS, BLOCK_SIZE, HEAD_DIM);
                Tensor vPool = Tensors.random(rnd, DType.F32, numBlocks, KV_HEADS, BLOCK_SIZE, HEAD_DIM);
                for (int j = 0; j < len; j++) {
                    copyRow(target.k(), 0, j, kPool, tables[at][j / BLOCK_SIZE], j % BLOCK_SIZE);
                    copyRow(target.v(), 0, j, vPool, tables[at][j / BLOCK_SIZE], j % BLOCK_SIZE);
                }
                Tensor q = Tensors.random(rnd, DType.F32, lens.length, QUERY_HEADS, shape[0], HEAD_DIM);
                place(target.q(), q, at, 0);
                for (AttentionOptions options : OPTIONS) {
                    PagedKv single = new PagedKv(kPool, vPool, new int[][] {tables[at]}, new int[] {len});
                    Bits alone = paged(target.q(), single, options, 0);
                    String where =
                            Arrays.toString(shape) + " in paged lengths " + Arrays.toString(lens) + " " + options;
                    alone.assertSame(paged(q, new PagedKv(kPool, vPool, tables, lens), options, at), where);
                }
            }
        }
    }

    @Test
    void aPackedSequenceHasTheBitsOfItsCallAlone() {
        SplittableRandom rnd = new SplittableRandom(44);
        for (int[] shape : SHAPES) {
            Sequence target = Sequence.random(rnd, shape[0], shape[1]);
            // Each batch: the other sequences' {Sq, Sk}; the target goes in at the index given last.
            int[][][] batches = {
                {{3, 900}, {1}}, {{64, 64}, {1, 4000}, {0}}, {{0, 5}, {7, 1}, {200, 200}, {1, 2500}, {3}}
            };
            for (AttentionOptions options : OPTIONS) {
                Bits alone = varlen(List.of(target), options, 0);
                for (int[][] others : batches) {
                    List<Sequence> sequences = new ArrayList<>();
                    for (int i = 0; i < others.length - 1; i++) {
                        sequences.add(Sequence.random(rnd, others[i][0], others[i][1]));
                    }
                    int at = others[others.length - 1][0];
                    sequences.add(at, target);
                    String where =
                            Arrays.toString(shape) + " at " + at + " of " + Arrays.deepToString(others) + " " + options;
                    alone.assertSame(varlen(sequences, options, at), where);
                }
            }
        }
    }

    /** Calls on other threads share the pool and its scratch at the same moment; each still gets the same bits. */
    @Test
    void concurrentCallsGiveTheBitsOfACallAlone() throws Exception {
        SplittableRandom rnd = new SplittableRandom(45);
        Sequence decode = Sequence.random(rnd, 1, 3000);
        Sequence prefill = Sequence.random(rnd, 100, 333);
        AttentionOptions causal = AttentionOptions.builder().causal(true).build();
        Bits decodeAlone = forward(decode.q(), decode.k(), decode.v(), causal, 0);
        Bits prefillAlone = forward(prefill.q(), prefill.k(), prefill.v(), causal, 0);
        try (ExecutorService callers = Executors.newFixedThreadPool(4)) {
            List<Future<Bits>> decodes = new ArrayList<>();
            List<Future<Bits>> prefills = new ArrayList<>();
            for (int i = 0; i < 6; i++) {
                decodes.add(callers.submit(() -> forward(decode.q(), decode.k(), decode.v(), causal, 0)));
                prefills.add(callers.submit(() -> forward(prefill.q(), prefill.k(), prefill.v(), causal, 0)));
            }
            for (int i = 0; i < decodes.size(); i++) {
                decodeAlone.assertSame(decodes.get(i).get(), "concurrent decode " + i);
                prefillAlone.assertSame(prefills.get(i).get(), "concurrent prefill " + i);
            }
        }
    }

    private Bits forward(Tensor q, Tensor k, Tensor v, AttentionOptions options, int at) {
        Tensor out = poisoned(q.batch(), q.seqLen(), HEAD_DIM);
        Tensor lse = poisoned(q.batch(), q.seqLen(), 1);
        cpu.forward(q, k, v, out, lse, options);
        return Bits.of(out.sequence(at, 0, q.seqLen()), lse.sequence(at, 0, q.seqLen()));
    }

    private Bits cached(Tensor q, Tensor kCache, Tensor vCache, int[] lens, AttentionOptions options, int at) {
        Tensor out = poisoned(q.batch(), q.seqLen(), HEAD_DIM);
        Tensor lse = poisoned(q.batch(), q.seqLen(), 1);
        cpu.forwardCached(q, kCache, vCache, lens, out, lse, options);
        return Bits.of(out.sequence(at, 0, q.seqLen()), lse.sequence(at, 0, q.seqLen()));
    }

    private Bits paged(Tensor q, PagedKv cache, AttentionOptions options, int at) {
        Tensor out = poisoned(q.batch(), q.seqLen(), HEAD_DIM);
        Tensor lse = poisoned(q.batch(), q.seqLen(), 1);
        cpu.forwardPaged(q, cache, out, lse, options);
        return Bits.of(out.sequence(at, 0, q.seqLen()), lse.sequence(at, 0, q.seqLen()));
    }

    /** The sequences packed back to back; the bits of sequence {@code at}. */
    private Bits varlen(List<Sequence> sequences, AttentionOptions options, int at) {
        int[] cuQ = new int[sequences.size() + 1];
        int[] cuK = new int[sequences.size() + 1];
        for (int s = 0; s < sequences.size(); s++) {
            cuQ[s + 1] = cuQ[s] + sequences.get(s).queryLen();
            cuK[s + 1] = cuK[s] + sequences.get(s).keyLen();
        }
        Tensor q = Tensor.allocate(DType.F32, 1, QUERY_HEADS, cuQ[sequences.size()], HEAD_DIM);
        Tensor k = Tensor.allocate(DType.F32, 1, KV_HEADS, cuK[sequences.size()], HEAD_DIM);
        Tensor v = Tensor.allocate(DType.F32, 1, KV_HEADS, cuK[sequences.size()], HEAD_DIM);
        for (int s = 0; s < sequences.size(); s++) {
            place(sequences.get(s).q(), q, 0, cuQ[s]);
            place(sequences.get(s).k(), k, 0, cuK[s]);
            place(sequences.get(s).v(), v, 0, cuK[s]);
        }
        Tensor out = poisoned(1, q.seqLen(), HEAD_DIM);
        Tensor lse = poisoned(1, q.seqLen(), 1);
        cpu.forwardVarlen(q, k, v, new PackedSequences(cuQ, cuK), out, lse, options);
        int rows = sequences.get(at).queryLen();
        return Bits.of(out.sequence(0, cuQ[at], rows), lse.sequence(0, cuQ[at], rows));
    }

    /** Copies batch-1 {@code src} (nothing when null) into entry {@code b} of {@code dst} from row {@code start} on. */
    private static void place(Tensor src, Tensor dst, int b, int start) {
        if (src == null) {
            return;
        }
        for (int s = 0; s < src.seqLen(); s++) {
            for (int h = 0; h < src.heads(); h++) {
                for (int x = 0; x < src.headDim(); x++) {
                    dst.set(b, h, start + s, x, src.get(0, h, s, x));
                }
            }
        }
    }

    /** Copies row {@code j} of every head of {@code src}'s entry {@code b} into slot {@code slot} of a pool block. */
    private static void copyRow(Tensor src, int b, int j, Tensor pool, int block, int slot) {
        for (int h = 0; h < src.heads(); h++) {
            for (int x = 0; x < src.headDim(); x++) {
                pool.set(block, h, slot, x, src.get(b, h, j, x));
            }
        }
    }

    private static Tensor poisoned(int batch, int queryLen, int dim) {
        Tensor t = Tensor.allocate(DType.F32, batch, QUERY_HEADS, queryLen, dim);
        t.fill(Float.NaN);
        return t;
    }

    private static int indexOf(int[] values, int value) {
        for (int i = 0; i < values.length; i++) {
            if (values[i] == value) {
                return i;
            }
        }
        throw new IllegalArgumentException("values: no " + value + " in " + Arrays.toString(values));
    }

    private static int[] shuffled(SplittableRandom rnd, int n) {
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) {
            int j = rnd.nextInt(i + 1);
            ids[i] = ids[j];
            ids[j] = i;
        }
        return ids;
    }

    static int[] bits(Tensor t) {
        float[] values = t.toFloatArray();
        int[] bits = new int[values.length];
        for (int i = 0; i < values.length; i++) {
            bits[i] = Float.floatToRawIntBits(values[i]);
        }
        return bits;
    }
}
