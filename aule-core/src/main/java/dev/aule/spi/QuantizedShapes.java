package dev.aule.spi;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Tensor;

import java.util.Objects;

/** Validation of quantized-cache calls ({@link AttentionBackend#forwardQuantized}), before a kernel reads a code. */
public final class QuantizedShapes {
    private QuantizedShapes() {}

    /**
     * A validated quantized call: its geometry and the copies a backend must read instead of the caller's arrays.
     *
     * @param shape its geometry; {@code keyLen} is the longest context
     * @param blockTables the validated copy of the block tables
     * @param contextLens the validated copy of the lengths
     * @param keyScales the validated copy of the key scales
     * @param valueScales the validated copy of the value scales
     * @param keyRowsAbnormal a copy of {@link QuantizedKv#keyRowsAbnormal}, or null
     * @param valueRowsAbnormal a copy of {@link QuantizedKv#valueRowsAbnormal}, or null
     */
    public record QuantizedCall(
            AttentionShape shape,
            int[][] blockTables,
            int[] contextLens,
            float[] keyScales,
            float[] valueScales,
            long[] keyRowsAbnormal,
            long[] valueRowsAbnormal) {}

    /**
     * Checks a quantized call: the rules of {@link ServingShapes#paged} on q, out, lse, the options, the tables
     * and the lengths (one table and length per batch entry, {@code 0 <= contextLens[b] <= blockTables[b].length *
     * blockSize}, every block id a context reaches in {@code [0, numBlocks)}); every extent at least 1; codes and
     * scale arrays of exactly the sizes {@link QuantizedKv} gives; every scale finite and {@code >= 0}. The tables,
     * lengths and scales are copied first and the copies validated, so a backend reads exactly what was checked.
     *
     * @param q queries {@code [B, Hq, Sq, D]}
     * @param cache the quantized pools, tables and lengths
     * @param out receives the output {@code [B, Hq, Sq, Dv]}
     * @param lse receives each row's log-sum-exp, F32 {@code [B, Hq, Sq, 1]}; null when not wanted
     * @param options masking, scale and the other options of the call
     * @param capabilities what the backend supports
     * @return the validated call
     * @throws IllegalArgumentException when a rule is broken
     */
    public static QuantizedCall quantized(
            Tensor q, QuantizedKv cache, Tensor out, Tensor lse, AttentionOptions options, Capabilities capabilities) {
        Objects.requireNonNull(q, "q");
        Objects.requireNonNull(cache, "cache");
        Objects.requireNonNull(out, "out");
        Objects.requireNonNull(options, "options");
        byte[] keyCodes = Objects.requireNonNull(cache.keyCodes(), "keyCodes");
        byte[] valueCodes = Objects.requireNonNull(cache.valueCodes(), "valueCodes");
        float[] keyScales =
                Objects.requireNonNull(cache.keyScales(), "keyScales").clone();
        float[] valueScales =
                Objects.requireNonNull(cache.valueScales(), "valueScales").clone();
        int[][] tables = copyOf(Objects.requireNonNull(cache.blockTables(), "blockTables"));
        int[] lens = Objects.requireNonNull(cache.contextLens(), "contextLens").clone();
        if (options.hasMasksOrScoreMods()) {
            throw new IllegalArgumentException("options: masks, biases, MaskMods and ScoreMods are not supported by"
                    + " quantized-cache attention; use causal, window, softcap and ALiBi, which apply per sequence");
        }
        if (options.hasDropout()) {
            throw new IllegalArgumentException(
                    "options.dropout: dropout is a training feature and is not supported by quantized-cache attention");
        }
        int numBlocks = cache.numBlocks();
        int blockSize = cache.blockSize();
        int kvHeads = cache.kvHeads();
        int headDim = cache.headDim();
        int valueDim = cache.valueDim();
        int[] extents = {numBlocks, blockSize, kvHeads, headDim, valueDim};
        for (int extent : extents) {
            if (extent < 1) {
                throw new IllegalArgumentException("numBlocks, blockSize, kvHeads, headDim, valueDim: must be >= 1,"
                        + " got " + java.util.Arrays.toString(extents));
            }
        }
        long rows = (long) kvHeads * numBlocks * blockSize;
        checkLength("keyCodes", keyCodes.length, rows * headDim, "Hkv * numBlocks * blockSize * D");
        checkLength("valueCodes", valueCodes.length, rows * valueDim, "Hkv * numBlocks * blockSize * Dv");
        checkLength("keyScales", keyScales.length, (long) kvHeads * numBlocks, "Hkv * numBlocks");
        checkLength("valueScales", valueScales.length, (long) kvHeads * numBlocks, "Hkv * numBlocks");
        checkScales("keyScales", keyScales);
        checkScales("valueScales", valueScales);
        long[] keyFlags = rowFlags("keyRowsAbnormal", cache.keyRowsAbnormal(), cache, kvHeads, numBlocks, blockSize);
        long[] valueFlags =
                rowFlags("valueRowsAbnormal", cache.valueRowsAbnormal(), cache, kvHeads, numBlocks, blockSize);
        TensorChecks.checkAccessible(new NamedTensor("q", q));
        if (q.batch() < 1) {
            throw new IllegalArgumentException("q: batch must be >= 1, got " + q.shapeString());
        }
        // The per-row rules (heads, head dims, dtypes, slopes) are forward's, with one dequantized F32 row as keys.
        Tensor kRow = Tensor.allocate(DType.F32, 1, kvHeads, 1, headDim);
        Tensor vRow = Tensor.allocate(DType.F32, 1, kvHeads, 1, valueDim);
        AttentionShape rowsShape =
                AttentionShape.ofInputs(q.sequence(0, 0, q.seqLen()), kRow, vRow, options, capabilities, q.batch());
        int batch = q.batch();
        if (tables.length != batch || lens.length != batch) {
            throw new IllegalArgumentException("blockTables, contextLens: lengths " + tables.length + " and "
                    + lens.length + " must both equal the batch " + batch + " of q " + q.shapeString());
        }
        int longest = 0;
        for (int b = 0; b < batch; b++) {
            int[] table = tables[b];
            if (table == null) {
                throw new IllegalArgumentException("blockTables[" + b + "]: is null");
            }
            long reach = (long) table.length * blockSize;
            if (lens[b] < 0 || lens[b] > reach) {
                throw new IllegalArgumentException("contextLens[" + b + "]: " + lens[b] + " must be in [0, " + reach
                        + "] (blockTables[" + b + "] has " + table.length + " blocks of " + blockSize + ")");
            }
            int used = Math.ceilDiv(lens[b], blockSize);
            for (int i = 0; i < used; i++) {
                if (table[i] < 0 || table[i] >= numBlocks) {
                    throw new IllegalArgumentException("blockTables[" + b + "][" + i + "]: block " + table[i]
                            + " must be in [0, numBlocks " + numBlocks + ")");
                }
            }
            longest = Math.max(longest, lens[b]);
        }
        AttentionShape.checkAlibiRange(options, Math.max(longest, q.seqLen()));
        AttentionShape shape = new AttentionShape(
                batch,
                rowsShape.queryHeads(),
                rowsShape.kvHeads(),
                rowsShape.queryLen(),
                longest,
                rowsShape.headDim(),
                rowsShape.valueDim());
        NamedTensor[] inputs = {new NamedTensor("q", q)};
        shape.checkOutput("out", out, shape.outShape(), capabilities, inputs);
        if (lse != null) {
            shape.checkLse(lse, capabilities);
            TensorChecks.checkWritable("lse", lse, inputs);
            TensorChecks.checkNoOverlap("lse", lse, "out", out);
        }
        return new QuantizedCall(shape, tables, lens, keyScales, valueScales, keyFlags, valueFlags);
    }

    private static void checkLength(String name, int length, long expected, String rule) {
        if (length != expected) {
            throw new IllegalArgumentException(
                    name + ": length " + length + " must be " + rule + " = " + expected + " for the cache's geometry");
        }
    }

    /**
     * A copy of optional row flags: FP8 only, {@link QuantizedKv#flagWords} words per (head, block); null stays null.
     * Any bits are safe to read (see {@link QuantizedKv#keyRowsAbnormal}), so only the length is checked.
     */
    private static long[] rowFlags(
            String name, long[] flags, QuantizedKv cache, int kvHeads, int numBlocks, int blockSize) {
        if (flags == null) {
            return null;
        }
        if (cache.format() == QuantizedKv.Format.INT8) {
            throw new IllegalArgumentException(name + ": given only for FP8 codes, not INT8");
        }
        long[] copy = flags.clone();
        checkLength(
                name,
                copy.length,
                (long) kvHeads * numBlocks * QuantizedKv.flagWords(blockSize),
                "Hkv * numBlocks * ceil(blockSize / 64)");
        return copy;
    }

    private static void checkScales(String name, float[] scales) {
        for (int i = 0; i < scales.length; i++) {
            if (!(scales[i] >= 0f) || scales[i] == Float.POSITIVE_INFINITY) {
                throw new IllegalArgumentException(name + "[" + i + "]: " + scales[i] + " must be finite and >= 0");
            }
        }
    }

    private static int[][] copyOf(int[][] blockTables) {
        int[][] copy = new int[blockTables.length][];
        for (int b = 0; b < copy.length; b++) {
            copy[b] = blockTables[b] == null ? null : blockTables[b].clone();
        }
        return copy;
    }
}
