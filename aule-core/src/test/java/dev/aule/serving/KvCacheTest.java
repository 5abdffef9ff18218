package dev.aule.serving;

import dev.aule.AttentionOptions;
import dev.aule.AttentionResult;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.AttentionBackend;
import dev.aule.testing.BackwardCases;
import dev.aule.testing.BackwardCases.Case;
import dev.aule.testing.BackwardCases.Qkv;
import dev.aule.testing.ForwardCase;
import dev.aule.testing.Tensors;
import dev.aule.testing.UnreachableMemory;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The contiguous cache: prefill, chunked prefill and decode against each sequence's own length. */
class KvCacheTest {

    /** Caches that fit in an array live in one, of the dtype's width: the kernels' fastest path, and what -Xmx sizes. */
    @Test
    void storageIsAJavaArrayOfTheDtypeWhenItFits() {
        KvCache f32 = KvCache.allocate(DType.F32, 2, 2, 64, 16, 8);
        assertTrue(f32.keys().memory().heapBase().orElseThrow() instanceof float[]);
        assertTrue(f32.values().memory().heapBase().orElseThrow() instanceof float[]);
        assertEquals(2L * 2 * 64 * 16 * Float.BYTES, f32.keys().memory().byteSize());
        for (DType half : new DType[] {DType.F16, DType.BF16}) {
            KvCache cache = KvCache.allocate(half, 1, 2, 32, 8);
            assertTrue(cache.keys().memory().heapBase().orElseThrow() instanceof short[], half.toString());
            assertTrue(cache.values().memory().heapBase().orElseThrow() instanceof short[], half.toString());
        }
        PagedKvCache paged = PagedKvCache.create(DType.F32, 8, 16, 2, 32);
        assertTrue(paged.keyBlocks().memory().heapBase().orElseThrow() instanceof float[]);
        assertTrue(paged.valueBlocks().memory().heapBase().orElseThrow() instanceof float[]);
    }

    private static final DType[] TYPES = {DType.F32, DType.F16, DType.BF16};

    @Test
    void prefillThenDecodeEqualsThePlainForwardOnTheCachedTokens() {
        for (long seed = 1; seed <= 24; seed++) {
            SplittableRandom rnd = new SplittableRandom(seed);
            Geometry g = Geometry.random(rnd, 3, 24);
            DType dtype = TYPES[(int) (seed % 3)];
            int capacity = 80 + rnd.nextInt(60);
            KvCache cache = KvCache.allocate(dtype, g.sequences(), g.kvHeads(), capacity, g.headDim(), g.valueDim());
            AttentionOptions options = ForwardCase.randomOptions(rnd, g.queryHeads(), capacity);
            // Steps: a ragged prefill, a chunk on top of it, then single-token decodes.
            int[] steps = {1 + rnd.nextInt(40), 1 + rnd.nextInt(20), 1, 1, 1};
            for (int step = 0; step < steps.length; step++) {
                int n = steps[step];
                int[] counts = new int[g.sequences()];
                for (int b = 0; b < g.sequences(); b++) {
                    counts[b] = step == 0 ? rnd.nextInt(n + 1) : n; // a sequence may stay empty in the prefill
                }
                Tensor k = Tensors.random(rnd, dtype, g.sequences(), g.kvHeads(), n, g.headDim());
                Tensor v = Tensors.random(rnd, dtype, g.sequences(), g.kvHeads(), n, g.valueDim());
                int[] before = cache.lengths();
                cache.append(k, v, counts, null);
                for (int b = 0; b < g.sequences(); b++) {
                    assertEquals(before[b] + counts[b], cache.length(b));
                }
                Tensor q = Tensors.random(rnd, dtype, g.sequences(), g.queryHeads(), n, g.headDim());
                checkAgainstReference(cache, q, options, "seed " + seed + " step " + step + " " + options);
            }
        }
    }

    private static void checkAgainstReference(KvCache cache, Tensor q, AttentionOptions options, String where) {
        int batch = cache.batch();
        for (AttentionBackend backend : new AttentionBackend[] {Backends.get("cpu"), Backends.get("reference")}) {
            Tensor out = Oracle.poisoned(q.dtype(), batch, q.heads(), q.seqLen(), cache.valueDim());
            Tensor lse = Oracle.poisoned(DType.F32, batch, q.heads(), q.seqLen(), 1);
            backend.forwardCached(q, cache.keys(), cache.values(), cache.lengths(), out, lse, options);
            for (int b = 0; b < batch; b++) {
                Tensor k = Oracle.prefix(cache.keys(), b, cache.length(b));
                Tensor v = Oracle.prefix(cache.values(), b, cache.length(b));
                String context =
                        backend.name() + " sequence " + b + " of " + Arrays.toString(cache.lengths()) + ", " + where;
                Oracle.assertRowsMatch(out, lse, q, b, 0, q.seqLen(), k, v, cache.valueDim(), options, context);
            }
        }
    }

    @Test
    void attentionOnTheSelectedBackendMatchesForwardCached() {
        SplittableRandom rnd = new SplittableRandom(5);
        KvCache cache = KvCache.allocate(DType.F32, 2, 2, 64, 32);
        cache.append(Tensors.random(rnd, DType.F32, 2, 2, 20, 32), Tensors.random(rnd, DType.F32, 2, 2, 20, 32));
        Tensor q = Tensors.random(rnd, DType.F32, 2, 8, 1, 32);
        AttentionOptions causal = AttentionOptions.builder().causal(true).build();
        AttentionResult r = cache.attention(q, causal);
        Tensor out = Tensor.allocate(DType.F32, 2, 8, 1, 32);
        Backends.get("cpu").forwardCached(q, cache.keys(), cache.values(), cache.lengths(), out, null, causal);
        assertArrayEquals(out.toFloatArray(), r.out().toFloatArray());
    }

    @Test
    void fullCacheAndBadAppendsChangeNothing() {
        SplittableRandom rnd = new SplittableRandom(3);
        KvCache cache = KvCache.allocate(DType.F32, 2, 1, 10, 8);
        cache.append(Tensors.random(rnd, DType.F32, 2, 1, 8, 8), Tensors.random(rnd, DType.F32, 2, 1, 8, 8));
        float[] keysBefore = cache.keys().toFloatArray();
        KvCacheFullException full = assertThrows(
                KvCacheFullException.class,
                () -> cache.append(
                        Tensors.random(rnd, DType.F32, 2, 1, 3, 8), Tensors.random(rnd, DType.F32, 2, 1, 3, 8)));
        assertTrue(full.getMessage().contains("capacity 10"), full.getMessage());
        assertThrows(
                IllegalArgumentException.class,
                () -> cache.append(
                        Tensors.random(rnd, DType.F32, 2, 2, 1, 8), Tensors.random(rnd, DType.F32, 2, 2, 1, 8)));
        assertThrows(
                IllegalArgumentException.class,
                () -> cache.append(
                        Tensors.random(rnd, DType.F32, 2, 1, 2, 8),
                        Tensors.random(rnd, DType.F32, 2, 1, 2, 8),
                        new int[] {1, 3},
                        null));
        Rope rope = Rope.of(8, 9, 10000, Rope.Style.NEOX);
        assertThrows(
                IllegalArgumentException.class,
                () -> cache.append(
                        Tensors.random(rnd, DType.F32, 2, 1, 2, 8),
                        Tensors.random(rnd, DType.F32, 2, 1, 2, 8),
                        null,
                        rope));
        assertArrayEquals(new int[] {8, 8}, cache.lengths());
        assertArrayEquals(keysBefore, cache.keys().toFloatArray());
        cache.truncate(1, 3);
        assertArrayEquals(new int[] {8, 3}, cache.lengths());
        assertThrows(IllegalArgumentException.class, () -> cache.truncate(1, 4));
    }

    @Test
    void badCacheLengthsAreRejectedBeforeAnyWrite() {
        AttentionOptions options = AttentionOptions.defaults();
        Qkv in = BackwardCases.qkv(new SplittableRandom(4), new Case(DType.F32, 2, 4, 2, 1, 16, 8, 8, options));
        for (AttentionBackend backend : new AttentionBackend[] {Backends.get("cpu"), Backends.get("reference")}) {
            for (int[] lens : new int[][] {{3, 17}, {-1, 2}, {3}, {1, 2, 3}}) {
                Tensor out = Oracle.poisoned(DType.F32, 2, 4, 1, 8);
                IllegalArgumentException e = assertThrows(
                        IllegalArgumentException.class,
                        () -> backend.forwardCached(in.q(), in.k(), in.v(), lens, out, null, options));
                assertTrue(e.getMessage().startsWith("cacheLens"), e.getMessage());
                assertTrue(Oracle.allNaN(out), "nothing written");
            }
        }
    }

    /** Keys and values that share memory, or rows that share memory, would overwrite each other on append. */
    @Test
    void storageWhoseRowsOrTensorsShareMemoryIsRejected() {
        Tensor t = Tensor.allocate(DType.F32, 1, 2, 4, 8);
        assertRejected("values", () -> KvCache.of(t, t));
        float[] data = new float[2 * 4 * 8 + 8];
        MemorySegment memory = MemorySegment.ofArray(data);
        long[] shape = {1, 2, 4, 8};
        long[] strides = {64, 32, 8, 1};
        Tensor keys = Tensor.of(memory, DType.F32, shape, strides);
        Tensor shifted = Tensor.of(memory.asSlice(8 * Float.BYTES), DType.F32, shape, strides);
        assertRejected("values", () -> KvCache.of(keys, shifted));
        Tensor broadcast = Tensor.of(MemorySegment.ofArray(new float[16]), DType.F32, shape, new long[] {16, 8, 0, 1});
        assertRejected("keys", () -> KvCache.of(broadcast, Tensor.allocate(DType.F32, 1, 2, 4, 8)));
        assertRejected("values", () -> KvCache.of(Tensor.allocate(DType.F32, 1, 2, 4, 8), broadcast));
        assertRejected("keys", () -> KvCache.of(UnreachableMemory.closed(t), Tensor.allocate(DType.F32, 1, 2, 4, 8)));
    }

    /** An append whose new rows cannot be read fails before it copies any row: the cache stays byte-identical. */
    @Test
    void appendingUnreachableRowsChangesNothing() {
        SplittableRandom rnd = new SplittableRandom(8);
        KvCache cache = KvCache.allocate(DType.F32, 2, 1, 10, 8);
        cache.append(Tensors.random(rnd, DType.F32, 2, 1, 3, 8), Tensors.random(rnd, DType.F32, 2, 1, 3, 8));
        PagedKvCache paged = PagedKvCache.create(DType.F32, 4, 4, 1, 8);
        int seq = paged.newSequence();
        paged.append(seq, Tensors.random(rnd, DType.F32, 1, 1, 3, 8), Tensors.random(rnd, DType.F32, 1, 1, 3, 8));
        float[][] before = {
            cache.keys().toFloatArray(),
            cache.values().toFloatArray(),
            paged.keyBlocks().toFloatArray(),
            paged.valueBlocks().toFloatArray()
        };
        Tensor k = Tensors.random(rnd, DType.F32, 2, 1, 2, 8);
        assertRejected("v", () -> cache.append(k, UnreachableMemory.closed(k)));
        Tensor k1 = Tensors.random(rnd, DType.F32, 1, 1, 2, 8);
        assertRejected("v", () -> paged.append(seq, k1, UnreachableMemory.closed(k1)));
        assertRejected("k", () -> paged.append(seq, UnreachableMemory.closed(k1), k1));
        assertArrayEquals(new int[] {3, 3}, cache.lengths());
        assertEquals(3, paged.length(seq));
        assertEquals(1, paged.usage().usedBlocks());
        assertArrayEquals(before[0], cache.keys().toFloatArray());
        assertArrayEquals(before[1], cache.values().toFloatArray());
        assertArrayEquals(before[2], paged.keyBlocks().toFloatArray());
        assertArrayEquals(before[3], paged.valueBlocks().toFloatArray());
    }

    /** Storage of the caller's whose arena was closed after the cache was built fails an append before any write. */
    @Test
    void storageClosedAfterTheCacheWasBuiltFailsTheAppendCleanly() {
        SplittableRandom rnd = new SplittableRandom(9);
        long[] shape = {1, 1, 4, 8};
        long[] strides = {32, 32, 8, 1};
        KvCache cache;
        try (Arena arena = Arena.ofConfined()) {
            cache = KvCache.of(
                    Tensor.of(arena.allocate(32 * Float.BYTES), DType.F32, shape, strides),
                    Tensor.of(arena.allocate(32 * Float.BYTES), DType.F32, shape, strides));
        }
        KvCache closed = cache;
        assertRejected(
                "keys",
                () -> closed.append(
                        Tensors.random(rnd, DType.F32, 1, 1, 1, 8), Tensors.random(rnd, DType.F32, 1, 1, 1, 8)));
        assertArrayEquals(new int[] {0}, closed.lengths());
    }

    private static void assertRejected(String argument, org.junit.jupiter.api.function.Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call, argument);
        assertTrue(e.getMessage().startsWith(argument + ": "), argument + " expected: " + e.getMessage());
    }
}
