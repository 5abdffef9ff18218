package dev.aule.serving;

import dev.aule.Attention;
import dev.aule.AttentionOptions;
import dev.aule.AttentionResult;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.PagedKv;
import dev.aule.testing.ForwardCase;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Paged attention of packed variable-length queries (chunked prefill mixed with decode): every sequence's rows
 * against the reference forward on its gathered keys, decode rows and prefill chunks and empty sequences in one
 * call, on cpu and reference; a sequence's bits do not depend on the others; every rule refused before a write.
 */
class VarlenPagedTest {
    private static final AttentionBackend[] BACKENDS = {Backends.get("cpu"), Backends.get("reference")};

    /** A random mixed batch in a {@link PagedKvCache}: its sequences, each sequence's rows and the packed q. */
    private record Batch(PagedKvCache cache, int[] seqs, int[] cuSeqlensQ, Tensor q, Tensor[] keys, Tensor[] values) {}

    private static Batch batch(SplittableRandom rnd, Geometry g, DType dtype, int blockSize) {
        int n = g.sequences();
        PagedKvCache cache = PagedKvCache.create(dtype, 12 * n + 8, blockSize, g.kvHeads(), g.headDim(), g.valueDim());
        int[] seqs = new int[n];
        int[] cu = new int[n + 1];
        Tensor[] keys = new Tensor[n];
        Tensor[] values = new Tensor[n];
        for (int s = 0; s < n; s++) {
            seqs[s] = cache.newSequence();
            int kind = rnd.nextInt(5);
            int len = kind == 0 ? 0 : 1 + rnd.nextInt(5 * blockSize);
            // Decode (1 row), a prefill chunk (many rows, its keys already appended), or a sequence with no row.
            int rows = len == 0 ? rnd.nextInt(2) : kind == 1 ? 0 : kind == 2 ? 1 + rnd.nextInt(len) : 1;
            if (len > 0) {
                Tensor k = Tensors.random(rnd, DType.F32, 1, g.kvHeads(), len, g.headDim());
                Tensor v = Tensors.random(rnd, DType.F32, 1, g.kvHeads(), len, g.valueDim());
                cache.append(seqs[s], k, v);
                keys[s] = Tensor.of(k.toFloatArray(), 1, g.kvHeads(), len, g.headDim());
                values[s] = Tensor.of(v.toFloatArray(), 1, g.kvHeads(), len, g.valueDim());
                if (dtype != DType.F32) { // the oracle reads the rows as the cache stores them
                    keys[s] = Oracle.prefix(gathered(cache, seqs[s], true), 0, len);
                    values[s] = Oracle.prefix(gathered(cache, seqs[s], false), 0, len);
                }
            }
            cu[s + 1] = cu[s] + rows;
        }
        if (cu[n] == 0) { // at least one row in the call
            cu[n] = 1;
        }
        Tensor q = Tensors.random(rnd, DType.F32, 1, g.queryHeads(), cu[n], g.headDim());
        return new Batch(cache, seqs, cu, q, keys, values);
    }

    /** A sequence's keys (or values) read back from its blocks. */
    private static Tensor gathered(PagedKvCache cache, int seq, boolean keys) {
        Tensor pool = keys ? cache.keyBlocks() : cache.valueBlocks();
        int len = cache.length(seq);
        int[] table = cache.blockTable(seq);
        Tensor t = Tensor.allocate(DType.F32, 1, pool.heads(), len, pool.headDim());
        float[] row = new float[pool.headDim()];
        for (int h = 0; h < pool.heads(); h++) {
            for (int j = 0; j < len; j++) {
                pool.readRow(table[j / cache.blockSize()], h, j % cache.blockSize(), row, 0);
                t.writeRow(0, h, j, row, 0);
            }
        }
        return t;
    }

    private static PagedKv kv(Batch batch) {
        int n = batch.seqs().length;
        int[][] tables = new int[n][];
        int[] lens = new int[n];
        for (int s = 0; s < n; s++) {
            tables[s] = batch.cache().blockTable(batch.seqs()[s]);
            lens[s] = batch.cache().length(batch.seqs()[s]);
        }
        return new PagedKv(batch.cache().keyBlocks(), batch.cache().valueBlocks(), tables, lens);
    }

    @Test
    void everySequenceEqualsTheForwardOnItsGatheredKeys() {
        int prefills = 0;
        int decodes = 0;
        for (long seed = 1; seed <= 30; seed++) {
            SplittableRandom rnd = new SplittableRandom(seed);
            Geometry g = Geometry.random(rnd, 6, 12);
            DType dtype = new DType[] {DType.F32, DType.F16, DType.BF16}[rnd.nextInt(3)];
            int blockSize = new int[] {1, 4, 16}[rnd.nextInt(3)];
            Batch batch = batch(rnd, g, dtype, blockSize);
            AttentionOptions options = ForwardCase.randomOptions(rnd, g.queryHeads(), 5 * blockSize);
            if (rnd.nextInt(3) == 0) {
                options = options.toBuilder()
                        .sinks(SinksTest.randomSinks(rnd, g.queryHeads()))
                        .build();
            }
            int totalQ = batch.q().seqLen();
            for (AttentionBackend backend : BACKENDS) {
                Tensor out = Oracle.poisoned(DType.F32, 1, g.queryHeads(), totalQ, g.valueDim());
                Tensor lse = Oracle.poisoned(DType.F32, 1, g.queryHeads(), totalQ, 1);
                backend.forwardVarlenPaged(batch.q(), kv(batch), batch.cuSeqlensQ(), out, lse, options);
                for (int s = 0; s < batch.seqs().length; s++) {
                    int q0 = batch.cuSeqlensQ()[s];
                    int rows = batch.cuSeqlensQ()[s + 1] - q0;
                    if (rows == 0) {
                        continue;
                    }
                    prefills += rows > 1 ? 1 : 0;
                    decodes += rows == 1 ? 1 : 0;
                    Tensor qs = batch.q().sequence(0, q0, rows);
                    AttentionResult expected =
                            SinksTest.oracleOrPlain(qs, batch.keys()[s], batch.values()[s], g.valueDim(), options);
                    SinksTest.assertClose(
                            out.sequence(0, q0, rows),
                            lse.sequence(0, q0, rows),
                            expected,
                            qs,
                            batch.keys()[s],
                            options,
                            backend.name() + " seed " + seed + " sequence " + s + " rows " + rows + " len "
                                    + batch.cache().length(batch.seqs()[s]) + " " + dtype + " " + options);
                }
                assertTrue(!Oracle.allNaN(out) || totalQ == 0);
            }
            // The cache's own entry point and the public one run the same call.
            AttentionResult viaCache =
                    batch.cache().attentionVarlen(batch.seqs(), batch.q(), batch.cuSeqlensQ(), options);
            PagedKv kv = kv(batch);
            AttentionResult viaAttention = Attention.forwardVarlenPaged(
                    batch.q(),
                    kv.kCache(),
                    kv.vCache(),
                    batch.cuSeqlensQ(),
                    kv.blockTables(),
                    kv.contextLens(),
                    options);
            assertArrayEquals(viaAttention.out().toFloatArray(), viaCache.out().toFloatArray());
            assertArrayEquals(viaAttention.lse().toFloatArray(), viaCache.lse().toFloatArray());
        }
        assertTrue(prefills > 10 && decodes > 10, "prefill chunks " + prefills + ", decode rows " + decodes);
    }

    @Test
    void aSequenceGetsTheSameBitsAloneOrMixedWithOthers() {
        SplittableRandom rnd = new SplittableRandom(41);
        Geometry g = new Geometry(5, 2, 2, 32, 32);
        Batch batch = batch(rnd, g, DType.F32, 16);
        AttentionOptions options = AttentionOptions.builder().causal(true).build();
        AttentionBackend cpu = Backends.get("cpu");
        Tensor out = Tensor.allocate(DType.F32, 1, 4, batch.q().seqLen(), 32);
        cpu.forwardVarlenPaged(batch.q(), kv(batch), batch.cuSeqlensQ(), out, null, options);
        PagedKv all = kv(batch);
        for (int s = 0; s < batch.seqs().length; s++) {
            int q0 = batch.cuSeqlensQ()[s];
            int rows = batch.cuSeqlensQ()[s + 1] - q0;
            if (rows == 0) {
                continue;
            }
            Tensor alone = Tensor.allocate(DType.F32, 1, 4, rows, 32);
            cpu.forwardVarlenPaged(
                    batch.q().sequence(0, q0, rows),
                    new PagedKv(all.kCache(), all.vCache(), new int[][] {all.blockTables()[s]}, new int[] {
                        all.contextLens()[s]
                    }),
                    new int[] {0, rows},
                    alone,
                    null,
                    options);
            assertArrayEquals(alone.toFloatArray(), out.sequence(0, q0, rows).toFloatArray(), "sequence " + s);
        }
    }

    @Test
    void badInputIsRejectedBeforeAnyWrite() {
        SplittableRandom rnd = new SplittableRandom(7);
        Tensor kCache = Tensors.random(rnd, DType.F32, 4, 1, 4, 8);
        Tensor vCache = Tensors.random(rnd, DType.F32, 4, 1, 4, 8);
        Tensor q = Tensors.random(rnd, DType.F32, 1, 2, 5, 8);
        int[][] tables = {{0, 1}, {2}};
        int[] lens = {6, 3};
        int[] cu = {0, 4, 5};
        AttentionOptions none = AttentionOptions.defaults();
        record Bad(String argument, Tensor q, int[] cu, int[][] tables, int[] lens, AttentionOptions options) {}
        Bad[] bad = {
            new Bad("cuSeqlensQ", q, new int[] {1, 4, 5}, tables, lens, none), // not from 0
            new Bad("cuSeqlensQ", q, new int[] {0, 4, 6}, tables, lens, none), // not ending at totalQ
            new Bad("cuSeqlensQ[2]", q, new int[] {0, 5, 4, 5}, new int[][] {{0}, {1}, {2}}, new int[] {1, 1, 1}, none),
            new Bad("cuSeqlensQ", q, new int[] {5}, new int[0][], new int[0], none), // one offset
            new Bad("blockTables, contextLens", q, new int[] {0, 5}, tables, lens, none), // 1 sequence, 2 tables
            new Bad("blockTables[1]", q, cu, new int[][] {{0, 1}, null}, lens, none),
            new Bad("contextLens[0]", q, cu, tables, new int[] {9, 3}, none), // past its table's reach
            new Bad("contextLens[1]", q, cu, tables, new int[] {6, -1}, none),
            new Bad("blockTables[0][1]", q, cu, new int[][] {{0, 4}, {2}}, lens, none), // block out of range
            new Bad("blockTables[1][0]", q, cu, new int[][] {{0, 1}, {-1}}, lens, none),
            new Bad("q", Tensors.random(rnd, DType.F32, 2, 2, 5, 8), cu, tables, lens, none), // batch 2
            new Bad(
                    "options.sinks",
                    q,
                    cu,
                    tables,
                    lens,
                    AttentionOptions.builder().sinks(new float[] {1f}).build()),
            new Bad(
                    "options.dropout",
                    q,
                    cu,
                    tables,
                    lens,
                    AttentionOptions.builder().dropout(0.1f, 1).build()),
            new Bad(
                    "options: masks",
                    q,
                    cu,
                    tables,
                    lens,
                    AttentionOptions.builder()
                            .maskMod(dev.aule.mask.MaskMod.causal())
                            .build()),
        };
        for (AttentionBackend backend : BACKENDS) {
            for (Bad b : bad) {
                Tensor out = Oracle.poisoned(DType.F32, b.q().batch(), 2, 5, 8);
                Tensor lse = Oracle.poisoned(DType.F32, b.q().batch(), 2, 5, 1);
                IllegalArgumentException e = assertThrows(
                        IllegalArgumentException.class,
                        () -> backend.forwardVarlenPaged(
                                b.q(),
                                new PagedKv(kCache, vCache, b.tables(), b.lens()),
                                b.cu(),
                                out,
                                lse,
                                b.options()),
                        b.argument());
                assertTrue(e.getMessage().startsWith(b.argument()), b.argument() + " expected: " + e.getMessage());
                assertTrue(Oracle.allNaN(out) && Oracle.allNaN(lse), "nothing written: " + b.argument());
            }
            // A wrong output shape, and a caller changing its arrays after the call changes nothing read.
            assertThrows(
                    IllegalArgumentException.class,
                    () -> backend.forwardVarlenPaged(
                            q,
                            new PagedKv(kCache, vCache, tables, lens),
                            cu,
                            Tensor.allocate(DType.F32, 1, 2, 4, 8),
                            null,
                            none));
        }
        PagedKvCache cache = PagedKvCache.create(DType.F32, 4, 4, 1, 8);
        int seq = cache.newSequence();
        assertThrows(
                IllegalArgumentException.class,
                () -> cache.attentionVarlen(new int[] {seq, 99}, q, cu, none),
                "unknown sequence");
    }
}
