package dev.aule.serving;

import dev.aule.Attention;
import dev.aule.AttentionOptions;
import dev.aule.AttentionResult;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.Availability;
import dev.aule.spi.CacheIndex;
import dev.aule.spi.Capabilities;
import dev.aule.testing.ForwardCase;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

import java.util.Arrays;
import java.util.EnumSet;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Cached attention against chosen cache rows with left pads ({@code cacheBatchIdx}, {@code cacheLeftpad}): batch
 * entry {@code b} against keys {@code [pad, len)} of row {@code idx[b]} equals the float64 oracle on exactly those
 * keys, on cpu and reference, and every index, pad and length is validated before anything is written.
 */
class CacheIndexTest {
    private static final DType[] TYPES = {DType.F32, DType.F16, DType.BF16};
    private static final String[] BACKENDS = {"cpu", "reference"};

    /** A contiguous F32 copy of positions {@code [from, to)} of cache row {@code row}, or null when empty. */
    static Tensor rows(Tensor cache, int row, int from, int to) {
        if (to == from) {
            return null;
        }
        return Tensor.of(
                cache.sequence(row, from, to - from).toFloatArray(), 1, cache.heads(), to - from, cache.headDim());
    }

    @Test
    void chosenRowsWithLeftPadsMatchTheOracle() {
        for (long seed = 1; seed <= 30; seed++) {
            SplittableRandom rnd = new SplittableRandom(seed);
            Geometry g = Geometry.random(rnd, 4, 24);
            DType dtype = TYPES[(int) (seed % 3)];
            int cacheRows = 1 + rnd.nextInt(4);
            int batch = g.sequences();
            int capacity = 1 + rnd.nextInt(seed % 5 == 0 ? 1500 : 90);
            int sq = 1 + rnd.nextInt(seed % 4 == 0 ? 9 : 2);
            int[] idx = new int[batch];
            int[] lens = new int[batch];
            int[] pads = new int[batch];
            for (int b = 0; b < batch; b++) {
                idx[b] = rnd.nextInt(cacheRows); // repeats allowed, rows may stay unread
                lens[b] = rnd.nextInt(4) == 0 ? capacity : rnd.nextInt(capacity + 1);
                pads[b] = rnd.nextInt(3) == 0 ? 0 : rnd.nextInt(lens[b] + 1);
            }
            Tensor kCache = Tensors.random(rnd, dtype, cacheRows, g.kvHeads(), capacity, g.headDim());
            Tensor vCache = Tensors.random(rnd, dtype, cacheRows, g.kvHeads(), capacity, g.valueDim());
            Tensor q = Tensors.random(rnd, dtype, batch, g.queryHeads(), sq, g.headDim());
            AttentionOptions options = ForwardCase.randomOptions(rnd, g.queryHeads(), capacity);
            String where = "seed " + seed + " idx " + Arrays.toString(idx) + " pads " + Arrays.toString(pads) + " lens "
                    + Arrays.toString(lens) + " " + dtype + " " + options;
            for (String name : BACKENDS) {
                Tensor out = Oracle.poisoned(dtype, batch, g.queryHeads(), sq, g.valueDim());
                Tensor lse = Oracle.poisoned(DType.F32, batch, g.queryHeads(), sq, 1);
                Backends.get(name).forwardCached(q, kCache, vCache, new CacheIndex(lens, idx, pads), out, lse, options);
                for (int b = 0; b < batch; b++) {
                    Tensor k = rows(kCache, idx[b], pads[b], lens[b]);
                    Tensor v = rows(vCache, idx[b], pads[b], lens[b]);
                    Oracle.assertRowsMatch(
                            out, lse, q, b, 0, sq, k, v, g.valueDim(), options, name + " entry " + b + ", " + where);
                }
            }
        }
    }

    /** Per-batch ALiBi slopes follow q's batch entry, not the cache row it reads. */
    @Test
    void perBatchSlopesFollowTheQueryEntry() {
        SplittableRandom rnd = new SplittableRandom(40);
        int batch = 3;
        int heads = 4;
        float[][] slopes = new float[batch][heads];
        for (float[] row : slopes) {
            for (int h = 0; h < heads; h++) {
                row[h] = (float) rnd.nextDouble();
            }
        }
        AttentionOptions options = AttentionOptions.builder()
                .causal(true)
                .alibiSlopesPerBatch(slopes)
                .build();
        Tensor kCache = Tensors.random(rnd, DType.F32, 2, 2, 50, 16);
        Tensor vCache = Tensors.random(rnd, DType.F32, 2, 2, 50, 16);
        Tensor q = Tensors.random(rnd, DType.F32, batch, heads, 2, 16);
        int[] idx = {1, 1, 0};
        int[] lens = {50, 31, 20};
        int[] pads = {7, 0, 3};
        for (String name : BACKENDS) {
            Tensor out = Oracle.poisoned(DType.F32, batch, heads, 2, 16);
            Tensor lse = Oracle.poisoned(DType.F32, batch, heads, 2, 1);
            Backends.get(name).forwardCached(q, kCache, vCache, new CacheIndex(lens, idx, pads), out, lse, options);
            for (int b = 0; b < batch; b++) {
                AttentionOptions own = AttentionOptions.builder()
                        .causal(true)
                        .alibiSlopes(slopes[b])
                        .build();
                Oracle.assertRowsMatch(
                        out,
                        lse,
                        q,
                        b,
                        0,
                        2,
                        rows(kCache, idx[b], pads[b], lens[b]),
                        rows(vCache, idx[b], pads[b], lens[b]),
                        16,
                        own,
                        name + " entry " + b);
            }
        }
    }

    /** Identity rows and zero pads given explicitly are the plain cached call, bit for bit. */
    @Test
    void explicitIdentityEqualsThePlainCall() {
        SplittableRandom rnd = new SplittableRandom(41);
        Tensor kCache = Tensors.random(rnd, DType.F32, 3, 2, 2000, 32);
        Tensor vCache = Tensors.random(rnd, DType.F32, 3, 2, 2000, 32);
        Tensor q = Tensors.random(rnd, DType.F32, 3, 4, 1, 32);
        int[] lens = {2000, 1200, 0};
        AttentionOptions causal = AttentionOptions.builder().causal(true).build();
        for (String name : BACKENDS) {
            AttentionBackend backend = Backends.get(name);
            Tensor plain = Tensor.allocate(DType.F32, 3, 4, 1, 32);
            Tensor indexed = Tensor.allocate(DType.F32, 3, 4, 1, 32);
            backend.forwardCached(q, kCache, vCache, lens, plain, null, causal);
            backend.forwardCached(
                    q, kCache, vCache, new CacheIndex(lens, new int[] {0, 1, 2}, new int[3]), indexed, null, causal);
            assertArrayEquals(plain.toFloatArray(), indexed.toFloatArray(), name);
        }
        AttentionResult viaApi = Attention.forwardCached(q, kCache, vCache, CacheIndex.ofLengths(lens), causal);
        AttentionResult old = Attention.forwardCached(q, kCache, vCache, lens, causal);
        assertArrayEquals(old.out().toFloatArray(), viaApi.out().toFloatArray());
        assertArrayEquals(old.lse().toFloatArray(), viaApi.lse().toFloatArray());
    }

    /** A batch entry's bits do not depend on which other entries read its row, or on the batch. */
    @Test
    void anEntryIsTheSameAloneAndInABatch() {
        SplittableRandom rnd = new SplittableRandom(42);
        Tensor kCache = Tensors.random(rnd, DType.F32, 2, 2, 3000, 64);
        Tensor vCache = Tensors.random(rnd, DType.F32, 2, 2, 3000, 64);
        Tensor q = Tensors.random(rnd, DType.F32, 4, 8, 1, 64);
        AttentionOptions causal = AttentionOptions.builder().causal(true).build();
        int[] idx = {1, 0, 1, 1};
        int[] lens = {3000, 2500, 2999, 100};
        int[] pads = {10, 0, 10, 0};
        AttentionBackend cpu = Backends.get("cpu");
        Tensor batched = Tensor.allocate(DType.F32, 4, 8, 1, 64);
        cpu.forwardCached(q, kCache, vCache, new CacheIndex(lens, idx, pads), batched, null, causal);
        for (int b = 0; b < 4; b++) {
            Tensor alone = Tensor.allocate(DType.F32, 1, 8, 1, 64);
            cpu.forwardCached(
                    q.sequence(b, 0, 1),
                    kCache,
                    vCache,
                    new CacheIndex(new int[] {lens[b]}, new int[] {idx[b]}, new int[] {pads[b]}),
                    alone,
                    null,
                    causal);
            assertArrayEquals(alone.toFloatArray(), batched.sequence(b, 0, 1).toFloatArray(), "entry " + b);
        }
    }

    @Test
    void attentionOverChosenCacheSequencesEqualsTheIndexedCall() {
        SplittableRandom rnd = new SplittableRandom(43);
        KvCache cache = KvCache.allocate(DType.F32, 3, 2, 64, 16);
        cache.append(
                Tensors.random(rnd, DType.F32, 3, 2, 30, 16),
                Tensors.random(rnd, DType.F32, 3, 2, 30, 16),
                new int[] {30, 12, 5},
                null);
        Tensor q = Tensors.random(rnd, DType.F32, 4, 4, 1, 16);
        int[] rows = {2, 0, 2, 1};
        AttentionOptions causal = AttentionOptions.builder().causal(true).build();
        AttentionResult r = cache.attention(rows, q, causal);
        Tensor out = Tensor.allocate(DType.F32, 4, 4, 1, 16);
        Tensor lse = Tensor.allocate(DType.F32, 4, 4, 1, 1);
        Backends.get("cpu")
                .forwardCached(
                        q,
                        cache.keys(),
                        cache.values(),
                        new CacheIndex(new int[] {5, 30, 5, 12}, rows, null),
                        out,
                        lse,
                        causal);
        assertArrayEquals(out.toFloatArray(), r.out().toFloatArray());
        assertArrayEquals(lse.toFloatArray(), r.lse().toFloatArray());
        for (int i = 0; i < rows.length; i++) {
            Oracle.assertRowsMatch(
                    r.out(),
                    r.lse(),
                    q,
                    i,
                    0,
                    1,
                    Oracle.prefix(cache.keys(), rows[i], cache.length(rows[i])),
                    Oracle.prefix(cache.values(), rows[i], cache.length(rows[i])),
                    16,
                    causal,
                    "entry " + i);
        }
        Tensor q3 = Tensors.random(rnd, DType.F32, 3, 4, 1, 16);
        assertArrayEquals(
                cache.attention(q3, causal).out().toFloatArray(),
                cache.attention(null, q3, causal).out().toFloatArray(),
                "null rows: every sequence in order");
    }

    @Test
    void badRowsOfACacheAreRejectedBeforeAnyWrite() {
        SplittableRandom rnd = new SplittableRandom(44);
        KvCache cache = KvCache.allocate(DType.F32, 2, 1, 16, 8);
        cache.append(Tensors.random(rnd, DType.F32, 2, 1, 4, 8), Tensors.random(rnd, DType.F32, 2, 1, 4, 8));
        Tensor q = Tensors.random(rnd, DType.F32, 2, 1, 1, 8);
        for (int[] rows : new int[][] {{0, 2}, {-1, 0}, {0}, {0, 1, 1}}) {
            Tensor out = Oracle.poisoned(DType.F32, 2, 1, 1, 8);
            String expected = rows.length == 2 ? "rows[" + (rows[0] < 0 ? 0 : 1) + "]" : "rows";
            assertRejected(expected, () -> cache.attentionInto(rows, q, out, null, AttentionOptions.defaults(), null));
            assertTrue(Oracle.allNaN(out), "nothing written");
        }
    }

    /** One test per rule, on both backends: the message names the entry and the rule, and out stays untouched. */
    @Test
    void everyIndexRuleIsCheckedBeforeAnyWrite() {
        SplittableRandom rnd = new SplittableRandom(45);
        Tensor kCache = Tensors.random(rnd, DType.F32, 3, 2, 10, 8);
        Tensor vCache = Tensors.random(rnd, DType.F32, 3, 2, 10, 8);
        Tensor q = Tensors.random(rnd, DType.F32, 2, 2, 1, 8);
        Tensor q3 = Tensors.random(rnd, DType.F32, 3, 2, 1, 8);
        Object[][] cases = { // {expected name, q, index}
            {"cacheBatchIdx[1]", q, new CacheIndex(new int[] {4, 4}, new int[] {0, 3}, null)},
            {"cacheBatchIdx[0]", q, new CacheIndex(new int[] {4, 4}, new int[] {-1, 0}, null)},
            {"cacheBatchIdx", q, new CacheIndex(new int[] {4, 4}, new int[] {0}, null)},
            {"cacheLeftpad[1]", q, new CacheIndex(new int[] {4, 4}, new int[] {0, 1}, new int[] {0, 5})},
            {"cacheLeftpad[0]", q, new CacheIndex(new int[] {4, 4}, new int[] {0, 1}, new int[] {-1, 0})},
            {"cacheLeftpad", q, new CacheIndex(new int[] {4, 4}, new int[] {0, 1}, new int[] {0, 0, 0})},
            {"cacheLens[1]", q, new CacheIndex(new int[] {4, 11}, new int[] {0, 1}, null)},
            {"cacheLens[0]", q, new CacheIndex(new int[] {-1, 4}, new int[] {0, 1}, new int[] {0, 0})},
            {"cacheLens", q, new CacheIndex(new int[] {4}, new int[] {0, 1}, null)},
            {"kCache", q, new CacheIndex(new int[] {4, 4}, null, new int[] {1, 1})}, // 3 rows, batch 2, no index
        };
        for (String name : BACKENDS) {
            AttentionBackend backend = Backends.get(name);
            for (Object[] c : cases) {
                Tensor query = (Tensor) c[1];
                Tensor out = Oracle.poisoned(DType.F32, query.batch(), 2, 1, 8);
                Tensor lse = Oracle.poisoned(DType.F32, query.batch(), 2, 1, 1);
                assertRejected(
                        (String) c[0],
                        () -> backend.forwardCached(
                                query, kCache, vCache, (CacheIndex) c[2], out, lse, AttentionOptions.defaults()));
                assertTrue(Oracle.allNaN(out) && Oracle.allNaN(lse), name + " " + c[0] + ": nothing written");
            }
            Tensor out = Oracle.poisoned(DType.F32, 3, 2, 1, 8);
            assertRejected(
                    "vCache",
                    () -> backend.forwardCached(
                            q3,
                            kCache,
                            Tensors.random(rnd, DType.F32, 2, 2, 10, 8),
                            new CacheIndex(new int[] {1, 1, 1}, new int[] {0, 0, 1}, null),
                            out,
                            null,
                            AttentionOptions.defaults()));
            assertTrue(Oracle.allNaN(out), name + ": nothing written");
            assertRejected(
                    "out",
                    () -> backend.forwardCached(
                            q3,
                            kCache,
                            vCache,
                            new CacheIndex(new int[] {1, 1, 1}, new int[] {0, 0, 1}, null),
                            Oracle.poisoned(DType.F32, 2, 2, 1, 8),
                            null,
                            AttentionOptions.defaults()));
        }
        // The index is checked before the API rotates or allocates anything for the call.
        assertRejected(
                "cacheBatchIdx[0]",
                () -> Attention.forwardCached(
                        q,
                        kCache,
                        vCache,
                        new CacheIndex(new int[] {1, 1}, new int[] {3, 0}, null),
                        AttentionOptions.defaults()));
    }

    /** A backend with only the plain cached entry point runs plain indices and refuses row indices and pads. */
    @Test
    void aBackendWithoutIndicesRefusesThemCleanly() {
        int[] plainCalls = {0};
        AttentionBackend plainOnly = new AttentionBackend() {
            @Override
            public String name() {
                return "plain-only";
            }

            @Override
            public String description() {
                return "test";
            }

            @Override
            public int priority() {
                return 0;
            }

            @Override
            public Availability availability() {
                return Availability.available("test");
            }

            @Override
            public Capabilities capabilities() {
                return Capabilities.of(64, EnumSet.of(DType.F32), Capabilities.Feature.SERVING);
            }

            @Override
            public void forward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, AttentionOptions options) {}

            @Override
            public void forwardCached(
                    Tensor q,
                    Tensor kCache,
                    Tensor vCache,
                    int[] cacheLens,
                    Tensor out,
                    Tensor lse,
                    AttentionOptions options) {
                plainCalls[0]++;
            }
        };
        plainOnly.forwardCached(null, null, null, CacheIndex.ofLengths(new int[] {1}), null, null, null);
        assertEquals(1, plainCalls[0]);
        UnsupportedOperationException e = assertThrows(
                UnsupportedOperationException.class,
                () -> plainOnly.forwardCached(
                        null, null, null, new CacheIndex(new int[] {1}, new int[] {0}, null), null, null, null));
        assertTrue(e.getMessage().contains("plain-only") && e.getMessage().contains("cacheBatchIdx"), e.getMessage());
        assertThrows(
                UnsupportedOperationException.class,
                () -> plainOnly.forwardCached(
                        null, null, null, new CacheIndex(new int[] {1}, null, new int[] {0}), null, null, null));
        assertEquals(1, plainCalls[0]);
    }

    static void assertRejected(String argument, Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call, argument);
        assertTrue(e.getMessage().startsWith(argument + ": "), argument + " expected: " + e.getMessage());
    }
}
