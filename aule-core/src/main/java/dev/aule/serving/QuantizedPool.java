package dev.aule.serving;

import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.QuantizedKv;

import java.util.Arrays;

/**
 * The storage of a quantized cache: key codes head-major {@code [Hkv][numBlocks][headDim][blockSize]} (a block's
 * slots adjacent, element by element, so the decode kernels load one element of consecutive keys as a vector) and
 * value codes {@code [Hkv][numBlocks][blockSize][valueDim]}, in one {@code byte[]} each, and a float scale per (KV
 * head, block) for each ({@link QuantizedKv}'s layout, so a call hands the arrays to the backend as they are).
 *
 * <p>Scales. INT8: the scale of a (head, block) is {@code max |x| / 127} over the rows stored in it, 0 while they
 * are all zero; a block's scale is reset when its first slot is written again (a new block, or one truncated to
 * its start). When new rows' {@code max |x|} passes {@code 127 * scale}, the rows already stored are re-quantized
 * to the new scale ({@code code' = rint(code * old / new)}) before the new rows are written. Error bound: a row
 * written once has {@code |x - x'| <= scale / 2} per element; each re-quantization rounds once more, to the new,
 * larger scale, so after {@code r} of them {@code |x - x'| <= (r + 1) * finalScale / 2}, with {@code r <
 * blockSize} (in practice a block's maximum settles within its first rows, and prefill writes a block's rows in
 * one step, with no re-quantization at all). FP8: the scale of every block of head {@code h} is the head's, fixed
 * at creation; {@code x' = fp8(x / scale) * scale}, the FP8 rounding's relative error ({@code 2^-4} E4M3, {@code
 * 2^-3} E5M2) above the normal range, saturated at the format's largest value times the scale.
 *
 * <p>Not thread-safe (the owning cache's rule).
 */
final class QuantizedPool {
    /** The longest array every JVM allocates. */
    private static final int MAX_ARRAY_LENGTH = Integer.MAX_VALUE - 8;

    final KvFormat format;
    final QuantizedKv.Format code;
    final int numBlocks;
    final int blockSize;
    final int kvHeads;
    final int headDim;
    final int valueDim;
    final byte[] keyCodes;
    final byte[] valueCodes;
    final float[] keyScales;
    final float[] valueScales;
    /**
     * FP8: per (KV head, block), {@link #flagWords} words with one bit per slot, set when the slot's last written key
     * row holds a code that is not a normal number ({@link QuantizedKv#keyRowsAbnormal}); null for INT8. All set in a
     * fresh pool (zero codes). Kept exact, slot by slot, on every write, so the kernels never scan the codes.
     */
    final long[] keyAbnormal;

    /** The same for the value rows. */
    final long[] valueAbnormal;

    /** {@link QuantizedKv#flagWords} of the block size. */
    private final int flagWords;

    /**
     * An all-zero pool; {@code keyScale}/{@code valueScale} (FP8 only, already checked: length 1 or {@code
     * kvHeads}, finite, positive) fill every block's scales of a head.
     */
    QuantizedPool(
            KvFormat format,
            int numBlocks,
            int blockSize,
            int kvHeads,
            int headDim,
            int valueDim,
            float[] keyScale,
            float[] valueScale) {
        this.format = format;
        this.code = format.code();
        this.numBlocks = numBlocks;
        this.blockSize = blockSize;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        this.valueDim = valueDim;
        this.keyCodes = new byte[length("keys", numBlocks, blockSize, kvHeads, headDim)];
        this.valueCodes = new byte[length("values", numBlocks, blockSize, kvHeads, valueDim)];
        this.keyScales = new float[length("scales", numBlocks, 1, kvHeads, 1)];
        this.valueScales = new float[keyScales.length];
        this.flagWords = QuantizedKv.flagWords(blockSize);
        boolean fp8 = code != QuantizedKv.Format.INT8;
        // At most a sixty-fourth of the key codes' length plus a word per (head, block): fits an int.
        this.keyAbnormal = fp8 ? new long[keyScales.length * flagWords] : null;
        this.valueAbnormal = fp8 ? new long[keyScales.length * flagWords] : null;
        if (fp8) {
            Arrays.fill(keyAbnormal, -1L);
            Arrays.fill(valueAbnormal, -1L);
            for (int h = 0; h < kvHeads; h++) {
                Arrays.fill(keyScales, h * numBlocks, (h + 1) * numBlocks, keyScale[keyScale.length == 1 ? 0 : h]);
                Arrays.fill(
                        valueScales, h * numBlocks, (h + 1) * numBlocks, valueScale[valueScale.length == 1 ? 0 : h]);
            }
        }
    }

    private static int length(String what, long numBlocks, long blockSize, long kvHeads, long dim) {
        long n;
        try {
            n = Math.multiplyExact(Math.multiplyExact(numBlocks, blockSize), Math.multiplyExact(kvHeads, dim));
        } catch (ArithmeticException e) {
            n = Long.MAX_VALUE;
        }
        if (n > MAX_ARRAY_LENGTH) {
            throw new IllegalArgumentException("numBlocks, blockSize, kvHeads, headDim, valueDim: the quantized " + what
                    + " would need " + n + " elements; a quantized pool holds at most " + MAX_ARRAY_LENGTH
                    + " per array");
        }
        return (int) n;
    }

    /**
     * Checks FP8 creation scales ({@code name}: the argument): null means 1; else length 1 (per tensor) or
     * {@code kvHeads} (per KV head), each finite and positive. Quantized formats other than FP8 and unquantized
     * ones take no scales. Returns a copy.
     */
    static float[] checkScales(String name, float[] scales, KvFormat format, int kvHeads) {
        boolean fp8 = format == KvFormat.FP8_E4M3 || format == KvFormat.FP8_E5M2;
        if (scales == null) {
            return fp8 ? new float[] {1f} : null;
        }
        if (!fp8) {
            throw new IllegalArgumentException(name + ": scales are given only for FP8 formats, not " + format
                    + (format == KvFormat.INT8 ? " (its scales follow the data, per block and head)" : ""));
        }
        float[] copy = scales.clone();
        if (copy.length != 1 && copy.length != kvHeads) {
            throw new IllegalArgumentException(name + ": length " + copy.length
                    + " must be 1 (per tensor) or the KV heads " + kvHeads + " (per head)");
        }
        for (int i = 0; i < copy.length; i++) {
            if (!(copy[i] > 0f) || copy[i] == Float.POSITIVE_INFINITY) {
                throw new IllegalArgumentException(name + "[" + i + "]: " + copy[i] + " must be finite and > 0");
            }
        }
        return copy;
    }

    /** {@return the bytes of codes and scales of one block, keys and values} */
    long bytesPerBlock() {
        return (long) blockSize * kvHeads * (headDim + valueDim) + 2L * kvHeads * Float.BYTES;
    }

    /** {@return the bytes of all codes and scales} */
    long bytes() {
        return (long) keyCodes.length
                + valueCodes.length
                + (long) Float.BYTES * (keyScales.length + valueScales.length);
    }

    /** The call's view of the pool with these (fresh, caller-unreachable) tables and lengths. */
    QuantizedKv view(int[][] tables, int[] lens) {
        return new QuantizedKv(
                code,
                numBlocks,
                blockSize,
                kvHeads,
                headDim,
                valueDim,
                keyCodes,
                valueCodes,
                keyScales,
                valueScales,
                tables,
                lens,
                keyAbnormal,
                valueAbnormal);
    }

    /**
     * Stores {@code n} rows ({@code rows[rowOff + r * dim ..]}, finite) in slots {@code slot .. slot + n - 1} of
     * {@code block} of {@code head}; slots below {@code slot} hold rows already stored (INT8 re-quantizes them when
     * the scale must grow).
     */
    void write(boolean key, int head, int block, int slot, float[] rows, int rowOff, int n) {
        int dim = key ? headDim : valueDim;
        byte[] codes = key ? keyCodes : valueCodes;
        float[] scales = key ? keyScales : valueScales;
        int at = head * numBlocks + block;
        if (code == QuantizedKv.Format.INT8) {
            float max = 0f;
            for (int i = rowOff; i < rowOff + n * dim; i++) {
                max = Math.max(max, Math.abs(rows[i]));
            }
            float old = slot == 0 ? 0f : scales[at];
            float needed = max / 127f;
            if (needed > old) {
                if (old > 0f) {
                    double ratio = (double) old / needed;
                    for (int s = 0; s < slot; s++) {
                        for (int x = 0; x < dim; x++) {
                            int i = index(key, at, s, x);
                            codes[i] = (byte) Math.rint(codes[i] * ratio);
                        }
                    }
                }
                scales[at] = needed;
            } else if (slot == 0) {
                scales[at] = needed; // a block written from its start again: no rows of the old contents remain
            }
            float scale = scales[at];
            for (int r = 0; r < n; r++) {
                for (int x = 0; x < dim; x++) {
                    codes[index(key, at, slot + r, x)] =
                            scale == 0f ? 0 : code.encode(rows[rowOff + r * dim + x] / scale);
                }
            }
        } else {
            float scale = scales[at];
            long[] flags = key ? keyAbnormal : valueAbnormal;
            for (int r = 0; r < n; r++) {
                boolean normal = true;
                for (int x = 0; x < dim; x++) {
                    byte c = code.encode(rows[rowOff + r * dim + x] / scale);
                    codes[index(key, at, slot + r, x)] = c;
                    normal &= code.isNormal(c);
                }
                int s = slot + r;
                int word = at * flagWords + (s >>> 6);
                long bit = 1L << (s & 63);
                flags[word] = normal ? flags[word] & ~bit : flags[word] | bit;
            }
        }
    }

    /**
     * Where element {@code x} of slot {@code slot} of (head, block) {@code at} ({@code head * numBlocks + block}) is
     * in the key or value codes: {@link QuantizedKv#keyCode} and {@link QuantizedKv#valueCode}'s layout. Fits an int:
     * the arrays do.
     */
    private int index(boolean key, int at, int slot, int x) {
        return key ? (at * headDim + x) * blockSize + slot : (at * blockSize + slot) * valueDim + x;
    }

    /** Copies every head's codes and scales of block {@code from} into block {@code to} (copy-on-write). */
    void copyBlock(int from, int to) {
        for (int h = 0; h < kvHeads; h++) {
            int a = h * numBlocks + from;
            int b = h * numBlocks + to;
            System.arraycopy(keyCodes, a * blockSize * headDim, keyCodes, b * blockSize * headDim, blockSize * headDim);
            System.arraycopy(
                    valueCodes, a * blockSize * valueDim, valueCodes, b * blockSize * valueDim, blockSize * valueDim);
            keyScales[b] = keyScales[a];
            valueScales[b] = valueScales[a];
            if (keyAbnormal != null) {
                System.arraycopy(keyAbnormal, a * flagWords, keyAbnormal, b * flagWords, flagWords);
                System.arraycopy(valueAbnormal, a * flagWords, valueAbnormal, b * flagWords, flagWords);
            }
        }
    }

    /** The dequantized row in {@code slot} of {@code block} of {@code head} into {@code dst[0, dim)}. */
    void read(boolean key, int head, int block, int slot, float[] dst) {
        int dim = key ? headDim : valueDim;
        byte[] codes = key ? keyCodes : valueCodes;
        int at = head * numBlocks + block;
        float scale = (key ? keyScales : valueScales)[at];
        for (int x = 0; x < dim; x++) {
            dst[x] = code.decode(codes[index(key, at, slot, x)]) * scale;
        }
    }

    /** The dequantized rows {@code [0, len)} ({@code len >= 1}) of a sequence of blocks {@code table}, F32 {@code [1, Hkv, len, dim]}. */
    Tensor dequantized(boolean key, int[] table, int len) {
        int dim = key ? headDim : valueDim;
        Tensor t = Tensor.allocate(DType.F32, 1, kvHeads, len, dim);
        float[] row = new float[dim];
        for (int h = 0; h < kvHeads; h++) {
            for (int j = 0; j < len; j++) {
                read(key, h, table[j / blockSize], j % blockSize, row);
                t.writeRow(0, h, j, row, 0);
            }
        }
        return t;
    }

    /**
     * Rows {@code s0 .. s0 + n - 1} of {@code (b, h)} of {@code src} as floats, keys rotated by {@code rope} to
     * positions {@code position0 ..} when not null; throws when one is not finite (nothing has been written then:
     * appends read every new row before storing any).
     */
    static float[] newRows(Tensor src, String name, int b, int h, int s0, int n, Rope rope, int position0) {
        int dim = src.headDim();
        float[] rows = new float[n * dim];
        float[] row = new float[dim];
        for (int s = 0; s < n; s++) {
            src.readRow(b, h, s0 + s, row, 0);
            if (rope != null) {
                rope.rotate(row, 0, position0 + s);
            }
            for (int x = 0; x < dim; x++) {
                if (!Float.isFinite(row[x])) {
                    throw new IllegalArgumentException(name + ": element [" + b + ", " + h + ", " + (s0 + s) + ", " + x
                            + "] is " + row[x] + (rope != null ? " after RoPE" : "")
                            + "; a quantized cache stores finite values only");
                }
            }
            System.arraycopy(row, 0, rows, s * dim, dim);
        }
        return rows;
    }
}
