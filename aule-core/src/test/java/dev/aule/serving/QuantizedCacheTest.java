package dev.aule.serving;

import dev.aule.AttentionOptions;
import dev.aule.AttentionResult;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.QuantizedKv;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Quantized caches (INT8, FP8 E4M3, FP8 E5M2), contiguous and paged: the cpu and reference backends against the
 * float64 oracle on the dequantized keys and values, over GQA shapes, causal and not, prefill and decode,
 * fork with copy-on-write, and INT8 blocks whose scale grows while they fill.
 */
class QuantizedCacheTest {
    private static final KvFormat[] QUANTIZED = {KvFormat.INT8, KvFormat.FP8_E4M3, KvFormat.FP8_E5M2};
    private static final AttentionBackend[] BACKENDS = {Backends.get("cpu"), Backends.get("reference")};

    /** Both backends on one call, each sequence against the oracle on what the cache dequantizes. */
    private static void check(
            QuantizedKv view, Tensor q, Tensor[] keys, Tensor[] values, AttentionOptions options, String where) {
        int dv = view.valueDim();
        for (AttentionBackend backend : BACKENDS) {
            Tensor out = Oracle.poisoned(DType.F32, q.batch(), q.heads(), q.seqLen(), dv);
            Tensor lse = Oracle.poisoned(DType.F32, q.batch(), q.heads(), q.seqLen(), 1);
            backend.forwardQuantized(q, view, out, lse, options);
            for (int b = 0; b < q.batch(); b++) {
                Oracle.assertRowsMatch(
                        out,
                        lse,
                        q,
                        b,
                        0,
                        q.seqLen(),
                        keys[b],
                        values[b],
                        dv,
                        options,
                        where + ", " + backend.name() + ", sequence " + b);
            }
        }
    }

    private static float[] scales(SplittableRandom rnd, KvFormat format, int kvHeads) {
        if (format == KvFormat.INT8 || rnd.nextInt(3) == 0) {
            return null;
        }
        float[] s = new float[rnd.nextBoolean() ? 1 : kvHeads];
        for (int i = 0; i < s.length; i++) {
            s[i] = (float) rnd.nextDouble(0.01, 2);
        }
        return s;
    }

    @Test
    void contiguousPrefillAndDecodeMatchTheOracleOnDequantizedRows() {
        for (long seed = 1; seed <= 18; seed++) {
            SplittableRandom rnd = new SplittableRandom(seed);
            KvFormat format = QUANTIZED[(int) (seed % 3)];
            Geometry g = Geometry.random(rnd, 3, 8);
            int capacity = 20 + rnd.nextInt(90);
            Rope rope = rnd.nextBoolean() && g.headDim() % 2 == 0
                    ? Rope.of(g.headDim(), capacity + 8, 10_000, Rope.Style.NEOX)
                    : null;
            KvCache cache = KvCache.allocate(
                    format,
                    scales(rnd, format, g.kvHeads()),
                    scales(rnd, format, g.kvHeads()),
                    g.sequences(),
                    g.kvHeads(),
                    capacity,
                    g.headDim(),
                    g.valueDim());
            int prompt = 1 + rnd.nextInt(capacity - 8);
            int[] counts = new int[g.sequences()];
            for (int b = 0; b < counts.length; b++) {
                counts[b] = rnd.nextInt(prompt + 1);
            }
            cache.append(
                    Tensors.random(rnd, DType.F32, g.sequences(), g.kvHeads(), prompt, g.headDim()),
                    Tensors.random(rnd, DType.F32, g.sequences(), g.kvHeads(), prompt, g.valueDim()),
                    counts,
                    rope);
            for (int step = 0; step < 4; step++) {
                int sq = step == 0 ? 1 + rnd.nextInt(4) : 1;
                AttentionOptions options =
                        AttentionOptions.builder().causal(rnd.nextBoolean()).build();
                Tensor q = Tensors.random(rnd, DType.F32, g.sequences(), g.queryHeads(), sq, g.headDim());
                Tensor[] keys = new Tensor[g.sequences()];
                Tensor[] values = new Tensor[g.sequences()];
                for (int b = 0; b < keys.length; b++) {
                    keys[b] = cache.dequantizedKeys(b);
                    values[b] = cache.dequantizedValues(b);
                }
                String where = "seed " + seed + " " + format + " " + g + " step " + step;
                check(cache.quantizedView(), q, keys, values, options, where);
                // The cache's own entry point runs on the cpu backend, bit for bit.
                AttentionResult viaCache = cache.attention(q, options);
                Tensor out = Tensor.allocate(DType.F32, q.batch(), q.heads(), sq, g.valueDim());
                Backends.get("cpu").forwardQuantized(q, cache.quantizedView(), out, null, options);
                assertArrayEquals(out.toFloatArray(), viaCache.out().toFloatArray(), where);
                cache.append(
                        Tensors.random(rnd, DType.F32, g.sequences(), g.kvHeads(), 1, g.headDim()),
                        Tensors.random(rnd, DType.F32, g.sequences(), g.kvHeads(), 1, g.valueDim()),
                        null,
                        rope);
            }
        }
    }

    @Test
    void pagedPrefillDecodeAndForkMatchTheOracleOnDequantizedRows() {
        for (long seed = 1; seed <= 18; seed++) {
            SplittableRandom rnd = new SplittableRandom(seed);
            KvFormat format = QUANTIZED[(int) (seed % 3)];
            Geometry g = Geometry.random(rnd, 3, 8);
            int blockSize = new int[] {1, 5, 16, 32}[rnd.nextInt(4)];
            PagedKvCache cache = PagedKvCache.create(
                    format,
                    scales(rnd, format, g.kvHeads()),
                    scales(rnd, format, g.kvHeads()),
                    200,
                    blockSize,
                    g.kvHeads(),
                    g.headDim(),
                    g.valueDim());
            int parent = cache.newSequence();
            int prompt = 1 + rnd.nextInt(70);
            cache.append(
                    parent,
                    Tensors.random(rnd, DType.F32, 1, g.kvHeads(), prompt, g.headDim()),
                    Tensors.random(rnd, DType.F32, 1, g.kvHeads(), prompt, g.valueDim()));
            Tensor parentKeys = cache.dequantizedKeys(parent);
            int[] seqs = new int[g.sequences()];
            seqs[0] = parent;
            for (int i = 1; i < seqs.length; i++) {
                seqs[i] = i % 2 == 1 ? cache.fork(parent) : cache.newSequence();
            }
            for (int step = 0; step < 4; step++) {
                int n = step == 0 ? 1 + rnd.nextInt(6) : 1;
                cache.append(
                        seqs,
                        Tensors.random(rnd, DType.F32, seqs.length, g.kvHeads(), n, g.headDim()),
                        Tensors.random(rnd, DType.F32, seqs.length, g.kvHeads(), n, g.valueDim()),
                        null);
                int sq = step == 0 ? n : 1;
                AttentionOptions options =
                        AttentionOptions.builder().causal(rnd.nextBoolean()).build();
                Tensor q = Tensors.random(rnd, DType.F32, seqs.length, g.queryHeads(), sq, g.headDim());
                Tensor[] keys = new Tensor[seqs.length];
                Tensor[] values = new Tensor[seqs.length];
                for (int i = 0; i < seqs.length; i++) {
                    keys[i] = cache.dequantizedKeys(seqs[i]);
                    values[i] = cache.dequantizedValues(seqs[i]);
                }
                String where = "seed " + seed + " " + format + " " + g + " blocks of " + blockSize + " step " + step;
                check(cache.quantizedView(seqs), q, keys, values, options, where);
            }
            // Forks appended into the shared partial block: the parent's prompt rows are as they were, in every
            // sequence that shares them (copy-on-write copied codes and scales; INT8 re-quantized only copies).
            if (format != KvFormat.INT8) {
                for (int seq : seqs) {
                    if (cache.length(seq) > prompt && (seq == parent || seq % 2 == 1)) {
                        assertArrayEquals(
                                parentKeys.toFloatArray(),
                                cache.dequantizedKeys(seq)
                                        .sequence(0, 0, prompt)
                                        .toFloatArray(),
                                "seed " + seed);
                    }
                }
            }
        }
    }

    /**
     * INT8 decode with growing magnitudes: every new token passes the block's scale, so the rows already stored
     * are re-quantized each step; the dequantized rows stay within the documented bound, and attention matches
     * the oracle on them.
     */
    @Test
    void int8BlocksRequantizeAsTheirMaximumGrows() {
        SplittableRandom rnd = new SplittableRandom(7);
        int kvHeads = 2;
        int d = 16;
        for (boolean paged : new boolean[] {false, true}) {
            KvCache contiguous = paged ? null : KvCache.allocate(KvFormat.INT8, 1, kvHeads, 64, d, d);
            PagedKvCache pool = paged ? PagedKvCache.create(KvFormat.INT8, 8, 16, kvHeads, d, d) : null;
            int seq = paged ? pool.newSequence() : 0;
            float[][] written = new float[40][];
            for (int t = 0; t < written.length; t++) {
                Tensor k = Tensors.random(rnd, DType.F32, 1, kvHeads, 1, d);
                float growth = (float) Math.pow(1.3, t % (paged ? 16 : KvCache.QUANT_BLOCK));
                float[] row = k.toFloatArray();
                for (int i = 0; i < row.length; i++) {
                    row[i] *= growth;
                }
                k = Tensor.of(row, 1, kvHeads, 1, d);
                written[t] = row;
                if (paged) {
                    pool.append(seq, k, k);
                } else {
                    contiguous.append(k, k);
                }
            }
            int block = paged ? 16 : KvCache.QUANT_BLOCK;
            Tensor keys = paged ? pool.dequantizedKeys(seq) : contiguous.dequantizedKeys(0);
            for (int t = 0; t < written.length; t++) {
                int blockStart = t / block * block;
                int blockEnd = Math.min(blockStart + block, written.length);
                for (int h = 0; h < kvHeads; h++) {
                    float max = 0f;
                    for (int j = blockStart; j < blockEnd; j++) {
                        for (int x = 0; x < d; x++) {
                            max = Math.max(max, Math.abs(written[j][h * d + x]));
                        }
                    }
                    float finalScale = max / 127f;
                    int requantizations = blockEnd - 1 - t; // each later token of the block grew its maximum
                    float[] got = new float[d];
                    keys.readRow(0, h, t, got, 0);
                    for (int x = 0; x < d; x++) {
                        double error = Math.abs(got[x] - written[t][h * d + x]);
                        double bound = (requantizations + 1) * finalScale / 2 * (1 + 1e-5);
                        assertTrue(
                                error <= bound,
                                "paged " + paged + " token " + t + " error " + error + " over " + bound);
                    }
                }
            }
            Tensor q = Tensors.random(rnd, DType.F32, 1, 4, 1, d);
            AttentionOptions options = AttentionOptions.defaults();
            Tensor values = paged ? pool.dequantizedValues(seq) : contiguous.dequantizedValues(0);
            check(
                    paged ? pool.quantizedView(new int[] {seq}) : contiguous.quantizedView(),
                    q,
                    new Tensor[] {keys},
                    new Tensor[] {values},
                    options,
                    "paged " + paged);
        }
    }

    /** Memory is the codes' bytes plus four per scale: a quarter of F32's and a little more. */
    @Test
    void usageCountsCodesAndScales() {
        PagedKvCache int8 = PagedKvCache.create(KvFormat.INT8, 10, 16, 8, 128, 128);
        PagedKvCache f32 = PagedKvCache.create(KvFormat.F32, 10, 16, 8, 128, 128);
        assertEquals(16L * 8 * 256 + 2 * 8 * 4, int8.usage().bytesPerBlock());
        assertEquals(16L * 8 * 256 * 4, f32.usage().bytesPerBlock());
        assertEquals(KvFormat.INT8, int8.format());
        KvCache c = KvCache.allocate(KvFormat.FP8_E5M2, 2, 8, 100, 64, 32);
        int blocks = 2 * 4; // 100 positions: 4 runs of 32
        assertEquals(2L * 8 * 128 * (64 + 32) + 2L * 8 * blocks * 4, c.bytes());
        assertEquals(KvFormat.FP8_E5M2, c.format());
    }

    /** Random activations: the error of each format against an F32 cache stays within what its precision gives. */
    @Test
    void errorAgainstAnF32CacheIsThatOfTheFormat() {
        SplittableRandom rnd = new SplittableRandom(3);
        int kvHeads = 2;
        int d = 64;
        int len = 300;
        Tensor k = Tensors.random(rnd, DType.F32, 1, kvHeads, len, d);
        Tensor v = Tensors.random(rnd, DType.F32, 1, kvHeads, len, d);
        Tensor q = Tensors.random(rnd, DType.F32, 1, 8, 1, d);
        KvCache exact = KvCache.allocate(KvFormat.F32, 1, kvHeads, len, d, d);
        exact.append(k, v);
        Tensor reference = exact.attention(q, AttentionOptions.defaults()).out();
        // Relative L2 error limits: INT8 ~ 2^-8 per element, E4M3 2^-4, E5M2 2^-3 (relative, halved by rounding).
        double[] limits = {0.01, 0.05, 0.1};
        for (int f = 0; f < QUANTIZED.length; f++) {
            KvCache cache = KvCache.allocate(QUANTIZED[f], 1, kvHeads, len, d, d);
            cache.append(k, v);
            double error = dev.aule.spi.Accuracy.relativeError(
                    cache.attention(q, AttentionOptions.defaults()).out(), reference);
            assertTrue(error < limits[f], QUANTIZED[f] + " relative error " + error);
            assertTrue(error > 0, QUANTIZED[f] + " must differ from F32 at all");
        }
    }
}
