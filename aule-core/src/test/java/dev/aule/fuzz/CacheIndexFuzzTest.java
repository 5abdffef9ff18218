package dev.aule.fuzz;

import dev.aule.Attention;
import dev.aule.AttentionOptions;
import dev.aule.AttentionResult;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.fuzz.Contract.Breach;
import dev.aule.mask.MaskMod;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.CacheIndex;
import dev.aule.testing.Layout;
import dev.aule.testing.UnreachableMemory;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Fuzzes cached attention with {@code cacheBatchIdx} and {@code cacheLeftpad} on cpu and reference and through
 * {@link Attention}: caches of another batch than q, repeated rows, pads, every layout, dtype and option the
 * serving calls take (numSplits included), hostile values in the caches; and broken indices, pads and lengths
 * (out of range, negative, near {@link Integer#MAX_VALUE}, of the wrong length), aliased and unreachable memory.
 */
class CacheIndexFuzzTest {
    private static final int[] SMALL = {1, 2, 3, 5, 8, 16, 17};

    @Test
    void indexedCachedAttentionMatchesTheReferenceOrRejects() {
        Fuzz.check("forwardCached with CacheIndex", 400, CacheIndexFuzzTest::indexedCase);
    }

    static void indexedCase(Choices c) {
        boolean facade = c.note("facade", c.oneIn(3));
        String name = c.note("backend", c.pick("cpu", "reference"));
        AttentionBackend backend = Backends.get(name);
        int batch = c.note("B", c.between(1, 3));
        int cacheRows = c.note("Bc", c.between(1, 4));
        int kvHeads = c.note("Hkv", c.pickInt(1, 2));
        int group = c.note("group", c.pickInt(1, 2, 4));
        int hq = kvHeads * group;
        int capacity = c.note("capacity", c.pickInt(SMALL));
        int sq = c.note("Sq", c.pickInt(1, 2, 3, 5));
        int d = c.note("D", c.pickInt(Draws.DIMS));
        int dv = c.note("Dv", c.oneIn(4) ? c.pickInt(Draws.DIMS) : d);
        DType cacheType = c.note("cache", Draws.dtype(c));
        DType qType = c.note("q", Draws.dtype(c));
        Layout layout = c.note("layout", Draws.layout(c));
        Draws.Values values = c.note("values", c.pick(Draws.Values.values()));
        int[] lens = new int[batch];
        int[] rows = new int[batch];
        int[] pads = new int[batch];
        for (int b = 0; b < batch; b++) {
            lens[b] = c.between(0, capacity);
            rows[b] = c.between(0, cacheRows - 1);
            pads[b] = c.oneIn(2) ? 0 : c.between(0, lens[b]);
        }
        c.note(
                "index",
                "lens " + Arrays.toString(lens) + " rows " + Arrays.toString(rows) + " pads " + Arrays.toString(pads));
        int breach = c.oneIn(2) ? c.note("break", c.below(12)) : 0;
        SplittableRandom rnd = new SplittableRandom(c.seed());
        AttentionOptions options = Draws.options(c, rnd, batch, hq, sq, capacity, false, false);
        if (c.oneIn(3)) {
            options = options.toBuilder()
                    .numSplits(c.note("numSplits", c.between(0, 9)))
                    .build();
        }
        try (Arena arena = Arena.ofConfined()) {
            Tensor q = Draws.tensor(Layout.BHSD, qType, batch, hq, sq, d, arena, rnd);
            Tensor kCache = Draws.tensor(layout, cacheType, cacheRows, kvHeads, capacity, d, arena, rnd);
            Tensor vCache = Draws.tensor(layout, cacheType, cacheRows, kvHeads, capacity, dv, arena, rnd);
            Draws.poison(values, rnd.nextBoolean() ? kCache : vCache, rnd);
            Tensor out = Draws.poisoned(Layout.BHSD, qType, batch, hq, sq, dv, arena, rnd);
            Tensor lse = Tensor.allocate(DType.F32, batch, hq, sq, 1);
            int[] cacheLens = lens.clone();
            int[] cacheRowsIdx = rows.clone();
            int[] cachePads = pads.clone();
            boolean identity = false;
            int victim = rnd.nextInt(batch);
            Breach why = Breach.none();
            switch (breach) {
                case 1 -> {
                    cacheRowsIdx[victim] = rnd.nextBoolean() ? cacheRows : -1;
                    why = Breach.of("a cache row out of range", "cacheBatchIdx");
                }
                case 2 -> {
                    cacheRowsIdx[victim] = rnd.nextBoolean() ? Integer.MAX_VALUE : Integer.MIN_VALUE;
                    why = Breach.of("a cache row of 2^31-1 or -2^31", "cacheBatchIdx");
                }
                case 3 -> {
                    cachePads[victim] = lens[victim] + 1 + rnd.nextInt(3);
                    why = Breach.of("a pad past the length", "cacheLeftpad");
                }
                case 4 -> {
                    cachePads[victim] = rnd.nextBoolean() ? -1 : Integer.MIN_VALUE;
                    why = Breach.of("a negative pad", "cacheLeftpad");
                }
                case 5 -> {
                    cacheRowsIdx = Arrays.copyOf(cacheRowsIdx, batch + 1);
                    why = Breach.of("a row too many", "cacheBatchIdx");
                }
                case 6 -> {
                    cachePads = Arrays.copyOf(cachePads, batch == 1 ? 2 : batch - 1);
                    why = Breach.of("pads of the wrong length", "cacheLeftpad");
                }
                case 7 -> {
                    cacheLens[victim] = rnd.nextBoolean() ? capacity + 1 : Integer.MAX_VALUE;
                    why = Breach.of("a length past the capacity", "cacheLens");
                }
                case 8 -> {
                    // No index: row b for entry b, which needs as many cache rows as entries.
                    identity = true;
                    cacheRowsIdx = null;
                    if (cacheRows != batch) {
                        why = Breach.of("no cacheBatchIdx with Bc != B", "kCache");
                    }
                }
                case 9 -> {
                    kCache = UnreachableMemory.closed(kCache);
                    why = Breach.of("kCache in a closed arena", "kCache");
                }
                case 10 -> {
                    Tensor alias = Draws.over(kCache.memory(), qType, Draws.shape(batch, hq, sq, dv));
                    if (alias != null && !facade) {
                        out = alias;
                        why = Breach.of("out over kCache", "out", "kCache");
                    }
                }
                case 11 -> {
                    options = options.toBuilder().maskMod(MaskMod.causal()).build();
                    why = Breach.of("a MaskMod (serving has none)", "options");
                }
                default -> {}
            }
            c.note("options", options);
            Tensor fq = q;
            Tensor fk = kCache;
            Tensor fv = vCache;
            Tensor[] got = {out, lse};
            CacheIndex index = new CacheIndex(cacheLens, cacheRowsIdx, cachePads);
            int[] readRows = identity ? Sequences.range(0, batch) : cacheRowsIdx;
            AttentionOptions fo = options;
            Contract.check(
                    why,
                    List.of(out, lse, kCache, vCache),
                    () -> {
                        if (facade) {
                            AttentionResult r = Attention.forwardCached(fq, fk, fv, index, fo);
                            got[0] = r.out();
                            got[1] = r.lse();
                        } else {
                            backend.forwardCached(fq, fk, fv, index, got[0], got[1], fo);
                        }
                    },
                    () -> {
                        for (int b = 0; b < batch; b++) {
                            int n = lens[b] - pads[b];
                            Sequences.assertRows(
                                    "entry " + b,
                                    got[0],
                                    got[1],
                                    b,
                                    0,
                                    fq.sequence(b, 0, sq),
                                    n == 0 ? null : Sequences.gather(fk, readRows[b], Sequences.range(pads[b], n)),
                                    n == 0 ? null : Sequences.gather(fv, readRows[b], Sequences.range(pads[b], n)),
                                    fo);
                        }
                    });
        }
    }
}
