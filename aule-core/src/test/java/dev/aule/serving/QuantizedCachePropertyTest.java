package dev.aule.serving;

import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.QuantizedKv;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Random operations on quantized caches (appends in random chunk sizes, fork, free, truncate) against a plain
 * model that keeps every row as it was given: after each operation every sequence's dequantized rows equal the
 * model's within the format's bound. FP8: exactly {@code fp8(x / scale) * scale}. INT8: {@code |x - x'| <= (r + 1)
 * * scale / 2} with {@code scale = max / 127} over what the block's (head's) rows were when its scale last grew and
 * {@code r} the times it grew since the row was written, the model following the same rule (a block's maximum
 * restarts when its first slot is written).
 */
class QuantizedCachePropertyTest {
    private static final int KV_HEADS = 2;
    private static final int D = 8;
    private static final int DV = 4;

    private static final KvFormat[] FORMATS = {KvFormat.INT8, KvFormat.FP8_E4M3, KvFormat.FP8_E5M2};

    /** {@code min..max} random operation codes in {@code [0, 100)}. */
    private static List<Integer> ops(SplittableRandom rnd, int min, int max) {
        List<Integer> ops = new ArrayList<>();
        for (int i = min + rnd.nextInt(max - min + 1); i > 0; i--) {
            ops.add(rnd.nextInt(100));
        }
        return ops;
    }

    /** A sequence of the model: rows as given, and for INT8 each block's maximum and each row's growth count. */
    private static final class Rows {
        final List<float[]> keys = new ArrayList<>();
        final List<float[]> values = new ArrayList<>();
        final List<float[]> keyMax = new ArrayList<>(); // per block: per head
        final List<float[]> valueMax = new ArrayList<>();
        final List<int[]> keyGrowths = new ArrayList<>(); // per row: per head
        final List<int[]> valueGrowths = new ArrayList<>();

        Rows copy() {
            Rows r = new Rows();
            r.keys.addAll(keys);
            r.values.addAll(values);
            keyMax.forEach(m -> r.keyMax.add(m.clone()));
            valueMax.forEach(m -> r.valueMax.add(m.clone()));
            keyGrowths.forEach(g -> r.keyGrowths.add(g.clone()));
            valueGrowths.forEach(g -> r.valueGrowths.add(g.clone()));
            return r;
        }

        void truncate(int length) {
            while (keys.size() > length) {
                int last = keys.size() - 1;
                keys.remove(last);
                values.remove(last);
                keyGrowths.remove(last);
                valueGrowths.remove(last);
            }
        }

        /** Appends rows {@code [from, from + n)} of batch entry {@code b} of k and v, as the cache runs them. */
        void append(Tensor k, Tensor v, int b, int n, int blockSize) {
            for (int s = 0; s < n; ) {
                int position = keys.size();
                int slot = position % blockSize;
                int run = Math.min(blockSize - slot, n - s);
                int block = position / blockSize;
                for (boolean key : new boolean[] {true, false}) {
                    Tensor src = key ? k : v;
                    int dim = key ? D : DV;
                    List<float[]> maxima = key ? keyMax : valueMax;
                    List<int[]> growths = key ? keyGrowths : valueGrowths;
                    while (maxima.size() <= block) {
                        maxima.add(new float[KV_HEADS]);
                    }
                    for (int h = 0; h < KV_HEADS; h++) {
                        float runMax = 0f;
                        for (int t = 0; t < run; t++) {
                            for (int x = 0; x < dim; x++) {
                                runMax = Math.max(runMax, Math.abs(src.get(b, h, s + t, x)));
                            }
                        }
                        float[] m = maxima.get(block);
                        if (slot == 0) {
                            m[h] = runMax;
                        } else if (runMax / 127f > m[h] / 127f) {
                            m[h] = runMax;
                            for (int j = block * blockSize; j < position; j++) {
                                growths.get(j)[h]++;
                            }
                        }
                    }
                }
                for (int t = 0; t < run; t++) {
                    keys.add(row(k, b, s + t, D));
                    values.add(row(v, b, s + t, DV));
                    keyGrowths.add(new int[KV_HEADS]);
                    valueGrowths.add(new int[KV_HEADS]);
                }
                s += run;
            }
        }

        private static float[] row(Tensor t, int b, int s, int dim) {
            float[] row = new float[KV_HEADS * dim];
            for (int h = 0; h < KV_HEADS; h++) {
                for (int x = 0; x < dim; x++) {
                    row[h * dim + x] = t.get(b, h, s, x);
                }
            }
            return row;
        }

        void assertStored(
                Tensor keysRead, Tensor valuesRead, KvFormat format, float scale, int blockSize, String where) {
            assertEquals(keys.size(), keysRead == null ? 0 : keysRead.seqLen(), where);
            for (int j = 0; j < keys.size(); j++) {
                for (int h = 0; h < KV_HEADS; h++) {
                    check(keysRead, keys.get(j), keyMax, keyGrowths.get(j), D, j, h, format, scale, blockSize, where);
                    check(
                            valuesRead,
                            values.get(j),
                            valueMax,
                            valueGrowths.get(j),
                            DV,
                            j,
                            h,
                            format,
                            scale,
                            blockSize,
                            where);
                }
            }
        }

        private static void check(
                Tensor read,
                float[] row,
                List<float[]> maxima,
                int[] growths,
                int dim,
                int j,
                int h,
                KvFormat format,
                float scale,
                int blockSize,
                String where) {
            for (int x = 0; x < dim; x++) {
                float given = row[h * dim + x];
                float got = read.get(0, h, j, x);
                if (format == KvFormat.INT8) {
                    double bound = (growths[h] + 1) * (maxima.get(j / blockSize)[h] / 127f) / 2 * (1 + 1e-5)
                            + 2 * Math.ulp(Math.abs(given)); // the float rounding of code * scale
                    assertTrue(
                            Math.abs(got - given) <= bound,
                            where + ": row " + j + " head " + h + " element " + x + " " + got + " for " + given
                                    + ", bound " + bound);
                } else {
                    float expected = format.code().decode(format.code().encode(given / scale)) * scale;
                    assertEquals(expected, got, 0f, where + ": row " + j + " head " + h + " element " + x);
                }
            }
        }
    }

    private static float scaleFor(KvFormat format, SplittableRandom rnd) {
        return format == KvFormat.INT8 ? 1f : (float) rnd.nextDouble(0.05, 2);
    }

    /**
     * The cache's row flags are exact over every row a call reads ({@link QuantizedKv#keyRowsAbnormal}): a clear bit
     * only over a row of normal FP8 codes (the kernels then widen it the short way), and a set bit only over a row
     * holding another code (else the kernels would take the slow widening for nothing).
     */
    static void assertFlagsHold(QuantizedKv view, String where) {
        if (view.format() == QuantizedKv.Format.INT8) {
            return;
        }
        int words = QuantizedKv.flagWords(view.blockSize());
        for (int b = 0; b < view.contextLens().length; b++) {
            int[] table = view.blockTables()[b];
            for (int j = 0; j < view.contextLens()[b]; j++) {
                int block = table[j / view.blockSize()];
                int slot = j % view.blockSize();
                for (int h = 0; h < view.kvHeads(); h++) {
                    int at = h * view.numBlocks() + block;
                    int word = at * words + slot / 64;
                    long bit = 1L << (slot % 64);
                    checkFlag(view, (view.keyRowsAbnormal()[word] & bit) != 0, true, h, block, slot, where + ", keys");
                    checkFlag(
                            view,
                            (view.valueRowsAbnormal()[word] & bit) != 0,
                            false,
                            h,
                            block,
                            slot,
                            where + ", values");
                }
            }
        }
    }

    private static void checkFlag(
            QuantizedKv view, boolean flagged, boolean key, int head, int block, int slot, String where) {
        boolean normal = true;
        for (int x = 0; x < (key ? view.headDim() : view.valueDim()); x++) {
            byte code = key
                    ? view.keyCodes()[(int) view.keyCode(head, block, slot, x)]
                    : view.valueCodes()[(int) view.valueCode(head, block, slot, x)];
            normal &= view.format().isNormal(code);
        }
        if (flagged == normal) {
            throw new AssertionError(where + ": head " + head + " block " + block + " slot " + slot + " is "
                    + (flagged
                            ? "flagged although every code is normal"
                            : "not flagged although a code is not normal"));
        }
    }

    /** 60 seeded cases: a format, a block size and 5 to 40 operations each. */
    @Test
    void pagedOperationsKeepEveryRowWithinTheFormatsBound() {
        for (long seed = 0; seed < 60; seed++) {
            SplittableRandom draw = new SplittableRandom(seed);
            pagedOperations(FORMATS[draw.nextInt(3)], 1 + draw.nextInt(9), ops(draw, 5, 40), draw.nextLong());
        }
    }

    private static void pagedOperations(KvFormat format, int blockSize, List<Integer> ops, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        float scale = scaleFor(format, rnd);
        float[] scales = format == KvFormat.INT8 ? null : new float[] {scale};
        PagedKvCache cache = PagedKvCache.create(format, scales, scales, 400, blockSize, KV_HEADS, D, DV);
        Map<Integer, Rows> model = new HashMap<>();
        model.put(cache.newSequence(), new Rows());
        for (int op = 0; op < ops.size(); op++) {
            List<Integer> live = new ArrayList<>(model.keySet());
            live.sort(null);
            int seq = live.get(ops.get(op) % live.size());
            int choice = ops.get(op) % 10;
            if (choice < 6) {
                int n = 1 + rnd.nextInt(2 * blockSize + 3);
                // Magnitudes vary by rows, so INT8 blocks grow their scale part-way.
                double magnitude = Math.pow(4, rnd.nextInt(4));
                Tensor k = scaled(Tensors.random(rnd, DType.F32, 1, KV_HEADS, n, D), magnitude);
                Tensor v = scaled(Tensors.random(rnd, DType.F32, 1, KV_HEADS, n, DV), magnitude);
                cache.append(seq, k, v);
                model.get(seq).append(k, v, 0, n, blockSize);
            } else if (choice < 8) {
                model.put(cache.fork(seq), model.get(seq).copy());
            } else if (choice == 8 && live.size() > 1) {
                cache.free(seq);
                model.remove(seq);
            } else {
                model.put(cache.newSequence(), new Rows());
            }
            for (Map.Entry<Integer, Rows> e : model.entrySet()) {
                e.getValue()
                        .assertStored(
                                cache.dequantizedKeys(e.getKey()),
                                cache.dequantizedValues(e.getKey()),
                                format,
                                scale,
                                blockSize,
                                format + " op " + op + " sequence " + e.getKey());
            }
            List<Integer> seqs = new ArrayList<>(model.keySet());
            assertFlagsHold(
                    cache.quantizedView(
                            seqs.stream().mapToInt(Integer::intValue).toArray()),
                    format + " op " + op);
        }
    }

    /** 40 seeded cases: a format and 5 to 30 operations each. */
    @Test
    void contiguousAppendsAndTruncationsKeepEveryRowWithinTheFormatsBound() {
        for (long seed = 100; seed < 140; seed++) {
            SplittableRandom draw = new SplittableRandom(seed);
            contiguousOperations(FORMATS[draw.nextInt(3)], ops(draw, 5, 30), draw.nextLong());
        }
    }

    private static void contiguousOperations(KvFormat format, List<Integer> ops, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        float scale = scaleFor(format, rnd);
        float[] scales = format == KvFormat.INT8 ? null : new float[] {scale};
        int batch = 2;
        int capacity = 150;
        KvCache cache = KvCache.allocate(format, scales, scales, batch, KV_HEADS, capacity, D, DV);
        Rows[] model = {new Rows(), new Rows()};
        for (int op = 0; op < ops.size(); op++) {
            int choice = ops.get(op) % 4;
            if (choice < 3) {
                int n = 1 + ops.get(op) % 40;
                int[] counts = new int[batch];
                for (int b = 0; b < batch; b++) {
                    counts[b] = Math.min(rnd.nextInt(n + 1), capacity - cache.length(b));
                }
                double magnitude = Math.pow(4, rnd.nextInt(4));
                Tensor k = scaled(Tensors.random(rnd, DType.F32, batch, KV_HEADS, n, D), magnitude);
                Tensor v = scaled(Tensors.random(rnd, DType.F32, batch, KV_HEADS, n, DV), magnitude);
                cache.append(k, v, counts, null);
                for (int b = 0; b < batch; b++) {
                    model[b].append(k, v, b, counts[b], KvCache.QUANT_BLOCK);
                }
            } else {
                int b = ops.get(op) % batch;
                int length = rnd.nextInt(cache.length(b) + 1);
                cache.truncate(b, length);
                model[b].truncate(length);
            }
            for (int b = 0; b < batch; b++) {
                model[b].assertStored(
                        cache.dequantizedKeys(b),
                        cache.dequantizedValues(b),
                        format,
                        scale,
                        KvCache.QUANT_BLOCK,
                        format + " op " + op + " sequence " + b);
            }
            assertFlagsHold(cache.quantizedView(), format + " op " + op);
        }
    }

    private static Tensor scaled(Tensor t, double factor) {
        float[] a = t.toFloatArray();
        for (int i = 0; i < a.length; i++) {
            a[i] *= (float) factor;
        }
        return Tensor.of(a, t.batch(), t.heads(), t.seqLen(), t.headDim());
    }
}
