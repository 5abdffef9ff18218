package dev.aule.fuzz;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.Accuracy;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.CacheIndex;
import dev.aule.testing.Tensors;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.statistics.Statistics;

import java.util.Arrays;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Properties of cached attention with {@code cacheBatchIdx} and {@code cacheLeftpad} over random index arrays, pads
 * and lengths (valid or not): a valid index gives, for every batch entry on cpu and reference, the float64
 * reference forward on exactly keys {@code [pad, len)} of its row; an invalid one is an
 * {@link IllegalArgumentException} naming the first bad entry, with nothing written.
 */
class CacheIndexPropertyTest {
    private static final int KV_HEADS = 2;
    private static final int QUERY_HEADS = 4;
    private static final int D = 8;

    /**
     * One drawn call: caches of {@code cacheRows} rows and {@code capacity} keys, q of {@code rows.length} entries
     * and {@code sq} rows, the index arrays (entries may be out of range), options and a data seed.
     */
    record Draw(
            int cacheRows,
            int capacity,
            int sq,
            int[] rows,
            int[] lens,
            int[] pads,
            boolean causal,
            int window,
            long seed) {
        @Override
        public String toString() {
            return "cacheRows " + cacheRows + " capacity " + capacity + " sq " + sq + " rows " + Arrays.toString(rows)
                    + " lens " + Arrays.toString(lens) + " pads " + Arrays.toString(pads) + " causal " + causal
                    + " window " + window + " seed " + seed;
        }
    }

    @Provide
    Arbitrary<Draw> draws() {
        Arbitrary<int[]> shape = Combinators.combine(
                        Arbitraries.integers().between(1, 4),
                        Arbitraries.integers().between(1, 40),
                        Arbitraries.integers().between(1, 3),
                        Arbitraries.integers().between(1, 5))
                .as((c, cap, sq, batch) -> new int[] {c, cap, sq, batch});
        return shape.flatMap(s -> {
            int batch = s[3];
            Arbitrary<int[]> rows = Arbitraries.integers()
                    .between(0, s[0] - 1)
                    .array(int[].class)
                    .ofSize(batch);
            Arbitrary<int[]> lens =
                    Arbitraries.integers().between(0, s[1]).array(int[].class).ofSize(batch);
            Arbitrary<int[]> pads =
                    Arbitraries.integers().between(0, s[1]).array(int[].class).ofSize(batch);
            // Half the draws break one rule at one entry: -1 none, else (rule, entry, which side of the range).
            Arbitrary<Integer> breach = Arbitraries.integers().between(-6 * batch, 6 * batch - 1);
            return Combinators.combine(
                            rows,
                            lens,
                            pads,
                            breach,
                            Arbitraries.of(true, false),
                            Arbitraries.integers().between(-1, 10),
                            Arbitraries.longs())
                    .as((rowsDrawn, lensDrawn, p, broken, causal, window, seed) -> {
                        int[] r = rowsDrawn.clone(); // drawn values may be shrunk and reused: never write them
                        int[] l = lensDrawn.clone();
                        int[] pad = p.clone();
                        for (int b = 0; b < batch; b++) {
                            pad[b] = Math.min(pad[b], l[b]); // valid: 0 <= pad <= len
                        }
                        if (broken >= 0) {
                            int b = broken / 6 % batch;
                            boolean low = broken % 2 == 0;
                            switch (broken % 6 / 2) {
                                case 0 -> r[b] = low ? -1 - broken % 3 : s[0] + broken % 3;
                                case 1 -> l[b] = low ? -1 : s[1] + 1 + broken % 3;
                                default -> pad[b] = low ? -1 : l[b] + 1;
                            }
                        }
                        return new Draw(s[0], s[1], s[2], r, l, pad, causal, window, seed);
                    });
        });
    }

    /** The name of the first entry the rules reject (in the order they are checked), or null when all is valid. */
    private static String firstBreach(Draw d) {
        for (int b = 0; b < d.rows().length; b++) {
            if (d.rows()[b] < 0 || d.rows()[b] >= d.cacheRows()) {
                return "cacheBatchIdx[" + b + "]";
            }
            if (d.lens()[b] < 0 || d.lens()[b] > d.capacity()) {
                return "cacheLens[" + b + "]";
            }
            if (d.pads()[b] < 0 || d.pads()[b] > d.lens()[b]) {
                return "cacheLeftpad[" + b + "]";
            }
        }
        return null;
    }

    @Property(tries = 150)
    void indexedCallsMatchTheReferenceOrRejectTheFirstBadEntry(@ForAll("draws") Draw d) {
        SplittableRandom rnd = new SplittableRandom(d.seed());
        int batch = d.rows().length;
        Tensor kCache = Tensors.random(rnd, DType.F32, d.cacheRows(), KV_HEADS, d.capacity(), D);
        Tensor vCache = Tensors.random(rnd, DType.F32, d.cacheRows(), KV_HEADS, d.capacity(), D);
        Tensor q = Tensors.random(rnd, DType.F32, batch, QUERY_HEADS, d.sq(), D);
        AttentionOptions options = AttentionOptions.builder()
                .causal(d.causal())
                .window(d.window(), d.causal() ? 0 : -1)
                .build();
        CacheIndex index = new CacheIndex(d.lens(), d.rows(), d.pads());
        String breach = firstBreach(d);
        // Both outcomes must be drawn often, or the property proves little.
        Statistics.label("outcome").collect(breach == null ? "valid" : "rejected");
        Statistics.label("outcome").coverage(c -> {
            c.check("valid").percentage(p -> p > 20);
            c.check("rejected").percentage(p -> p > 20);
        });
        for (String name : new String[] {"cpu", "reference"}) {
            AttentionBackend backend = Backends.get(name);
            Tensor out = Tensor.allocate(DType.F32, batch, QUERY_HEADS, d.sq(), D);
            Tensor lse = Tensor.allocate(DType.F32, batch, QUERY_HEADS, d.sq(), 1);
            out.fill(Float.NaN);
            lse.fill(Float.NaN);
            if (breach != null) {
                IllegalArgumentException e = assertThrows(
                        IllegalArgumentException.class,
                        () -> backend.forwardCached(q, kCache, vCache, index, out, lse, options),
                        name + " " + d);
                assertTrue(e.getMessage().startsWith(breach + ": "), breach + " expected: " + e.getMessage());
                assertTrue(allNaN(out) && allNaN(lse), "nothing written");
                continue;
            }
            backend.forwardCached(q, kCache, vCache, index, out, lse, options);
            for (int b = 0; b < batch; b++) {
                int keys = d.lens()[b] - d.pads()[b];
                Tensor ref = Tensor.allocate(DType.F32, 1, QUERY_HEADS, d.sq(), D);
                Tensor refLse = Tensor.allocate(DType.F32, 1, QUERY_HEADS, d.sq(), 1);
                if (keys == 0) {
                    refLse.fill(Float.NEGATIVE_INFINITY);
                } else {
                    Tensor k = copy(kCache.sequence(d.rows()[b], d.pads()[b], keys));
                    Tensor v = copy(vCache.sequence(d.rows()[b], d.pads()[b], keys));
                    Backends.get("reference").forward(q.sequence(b, 0, d.sq()), k, v, ref, refLse, options);
                }
                double outError = Accuracy.relativeError(out.sequence(b, 0, d.sq()), ref);
                double lseError = Accuracy.relativeError(lse.sequence(b, 0, d.sq()), refLse);
                assertTrue(
                        outError < 1e-5 && lseError < 1e-5,
                        name + " entry " + b + ": out " + outError + " lse " + lseError + ", " + d);
            }
        }
        assertEquals(batch, index.cacheLens().length, "the caller's arrays are left as they were");
    }

    private static Tensor copy(Tensor t) {
        return Tensor.of(t.toFloatArray(), 1, t.heads(), t.seqLen(), t.headDim());
    }

    private static boolean allNaN(Tensor t) {
        for (float x : t.toFloatArray()) {
            if (!Float.isNaN(x)) {
                return false;
            }
        }
        return true;
    }
}
