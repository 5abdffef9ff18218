package dev.aule.spi;

import java.util.Objects;

/**
 * A quantized key/value cache as one call reads it: 8-bit codes of keys and values in blocks of
 * {@code blockSize} tokens, a float scale per (KV head, block) for keys and one for values, and for each
 * sequence of the batch its block table and length (vLLM's {@code key_cache}/{@code value_cache} with
 * {@code kv_cache_dtype} {@code "int8"}/{@code "fp8_e4m3"}/{@code "fp8_e5m2"}, {@code k_scale}, {@code v_scale},
 * {@code block_tables} and {@code context_lens}).
 *
 * <p>Layout, head-major, each (KV head, block) one run of codes: element {@code x} of the key in slot {@code s} of
 * block {@code n} of KV head {@code h} is code {@code ((h * numBlocks + n) * headDim + x) * blockSize + s} of {@code
 * keyCodes} ({@link #keyCode}: a block's keys are stored element by element, the block's slots adjacent, so that one
 * vector load holds one element of consecutive keys, as vLLM's key cache keeps its block slots inside each group of
 * head elements), and element {@code x} of the value in that slot is code {@code ((h * numBlocks + n) * blockSize +
 * s) * valueDim + x} of {@code valueCodes} ({@link #valueCode}: row by row). Their scales are {@code keyScales[h *
 * numBlocks + n]} and {@code valueScales[h * numBlocks + n]}. The stored value is {@link Format#decode}{@code (code)
 * * scale}. A contiguous cache is the case where sequence {@code b}'s blocks are {@code b * blocksPerSequence + i}.
 *
 * <p>A plain carrier: it checks nothing and holds the caller's arrays as they are.
 * {@link QuantizedShapes#quantized} validates it and copies the tables, lengths and scales before a backend
 * reads them; the codes are the cache's memory and are read in place.
 *
 * @param format how one code stands for a number
 * @param numBlocks blocks in each pool
 * @param blockSize tokens per block
 * @param kvHeads KV heads {@code Hkv}
 * @param headDim elements {@code D} per key row
 * @param valueDim elements {@code Dv} per value row
 * @param keyCodes key codes, {@code Hkv * numBlocks * blockSize * D} of them
 * @param valueCodes value codes, {@code Hkv * numBlocks * blockSize * Dv} of them
 * @param keyScales key scales, {@code Hkv * numBlocks}, each finite and {@code >= 0}
 * @param valueScales value scales, {@code Hkv * numBlocks}, each finite and {@code >= 0}
 * @param blockTables each sequence's block ids, in position order
 * @param contextLens cached tokens of each sequence
 * @param keyRowsAbnormal FP8 only, optional (null: unknown): which key rows may hold a code that is not a normal
 *     number (a zero, subnormal, NaN or infinity pattern), {@link #flagWords}{@code (blockSize)} words per (KV head,
 *     block) in the scales' order: bit {@code s % 64} of word {@code (h * numBlocks + n) * flagWords(blockSize) + s /
 *     64} stands for slot {@code s} of block {@code n} of head {@code h}, set when the slot may hold such a code and
 *     clear when every code of it is normal. The caches keep it; the cpu kernels then widen each row in the way its
 *     bit calls for without first scanning the codes. A set bit over a normal row costs only speed; a caller that
 *     clears the bit of a row holding such a code gets that code read as it is or as another finite number, never
 *     an exception or a read outside the arrays.
 * @param valueRowsAbnormal the same for the value rows
 */
public record QuantizedKv(
        Format format,
        int numBlocks,
        int blockSize,
        int kvHeads,
        int headDim,
        int valueDim,
        byte[] keyCodes,
        byte[] valueCodes,
        float[] keyScales,
        float[] valueScales,
        int[][] blockTables,
        int[] contextLens,
        long[] keyRowsAbnormal,
        long[] valueRowsAbnormal) {

    /** How an 8-bit code stands for a number, before its scale multiplies it. */
    public enum Format {
        /** A signed byte, {@code -127 .. 127} (symmetric: -128 is never written, but reads as -128). */
        INT8(127f),
        /**
         * OCP FP8 E4M3 ("fn"): 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinity, largest 448; {@code
         * S.1111.111} is NaN.
         */
        FP8_E4M3(448f),
        /** OCP FP8 E5M2: 1 sign, 5 exponent (bias 15), 2 mantissa bits, IEEE-like; largest finite 57344. */
        FP8_E5M2(57344f);

        private final float max;

        Format(float max) {
            this.max = max;
        }

        /** {@return the largest finite magnitude a code holds} */
        public float max() {
            return max;
        }

        /**
         * The number a code stands for. FP8: the sign, and the 7 magnitude bits shifted into binary32's
         * exponent and fraction, times {@code 2^120} (E4M3) or {@code 2^112} (E5M2) to rebias the exponent: exact,
         * subnormals and zero included; the all-ones patterns (E4M3 {@code 0x7F}, E5M2 exponent 31) are NaN and
         * infinity.
         *
         * @param code the stored byte
         * @return its value
         */
        public float decode(byte code) {
            int b = code;
            return switch (this) {
                case INT8 -> b;
                case FP8_E4M3 -> {
                    if ((b & 0x7F) == 0x7F) {
                        yield Float.NaN;
                    }
                    float magnitude = Float.intBitsToFloat((b & 0x7F) << 20) * 0x1p120f;
                    yield (b & 0x80) != 0 ? -magnitude : magnitude;
                }
                case FP8_E5M2 -> {
                    if ((b & 0x7C) == 0x7C) {
                        yield (b & 0x03) != 0
                                ? Float.NaN
                                : (b & 0x80) != 0 ? Float.NEGATIVE_INFINITY : Float.POSITIVE_INFINITY;
                    }
                    float magnitude = Float.intBitsToFloat((b & 0x7F) << 21) * 0x1p112f;
                    yield (b & 0x80) != 0 ? -magnitude : magnitude;
                }
            };
        }

        /**
         * Whether a code is a normal number: for FP8, an exponent field neither all zeros (zero and subnormals) nor
         * the NaN or infinity patterns (E4M3 magnitude 0x7F; E5M2 exponent 31); INT8 codes are all integers, so
         * false for every INT8 code (the distinction is FP8's).
         *
         * @param code the stored byte
         * @return whether it is a normal FP8 number
         */
        public boolean isNormal(byte code) {
            int magnitude = code & 0x7F;
            return switch (this) {
                case INT8 -> false;
                case FP8_E4M3 -> magnitude >= 0x08 && magnitude != 0x7F;
                case FP8_E5M2 -> magnitude >= 0x04 && magnitude < 0x7C;
            };
        }

        /**
         * The code of {@code x} (already divided by its scale): rounded to the nearest code, ties to even,
         * saturated to {@code +-}{@link #max()}; NaN gives 0 (callers never store a NaN: caches reject them).
         *
         * @param x the number to store
         * @return its code
         */
        public byte encode(float x) {
            if (Float.isNaN(x)) {
                return 0;
            }
            if (this == INT8) {
                return (byte) Math.rint(Math.max(-127f, Math.min(127f, x)));
            }
            float a = Math.min(Math.abs(x), max);
            int sign = Float.floatToRawIntBits(x) < 0 ? 0x80 : 0;
            int mantissaBits = this == FP8_E4M3 ? 3 : 2;
            int minExponent = this == FP8_E4M3 ? -6 : -14; // of the smallest normal
            // The spacing of codes around a: 2^(e - m) for a normal a of exponent e, the subnormal spacing below.
            int e = Math.max(Math.getExponent(a), minExponent);
            float quantum = Math.scalb(1f, e - mantissaBits);
            float rounded = (float) Math.rint(a / quantum) * quantum; // exact: a / quantum has < 24 bits
            // Rounding up may carry into the next binade, which the shift below handles; a max of 448 or 57344
            // is a code, and a is at most max, so rounded stays within max.
            int bits = Float.floatToRawIntBits(rounded / (this == FP8_E4M3 ? 0x1p120f : 0x1p112f));
            int code = bits >>> (this == FP8_E4M3 ? 20 : 21);
            return (byte) (sign | code);
        }
    }

    /**
     * Words of row flags per (KV head, block) in {@link #keyRowsAbnormal} and {@link #valueRowsAbnormal}: one bit per
     * slot, 64 to a word.
     *
     * @param blockSize tokens per block, {@code >= 1}
     * @return {@code ceil(blockSize / 64)}
     */
    public static int flagWords(int blockSize) {
        return Math.ceilDiv(blockSize, 64);
    }

    /**
     * Where element {@code x} of the key in slot {@code slot} of block {@code block} of KV head {@code head} is in
     * {@link #keyCodes} (the class comment's layout; indices are not checked).
     *
     * @param head the KV head
     * @param block the block
     * @param slot the slot in the block
     * @param x the element
     * @return the code's index
     */
    public long keyCode(int head, int block, int slot, int x) {
        return (((long) head * numBlocks + block) * headDim + x) * blockSize + slot;
    }

    /**
     * Where element {@code x} of the value in slot {@code slot} of block {@code block} of KV head {@code head} is in
     * {@link #valueCodes} (the class comment's layout; indices are not checked).
     *
     * @param head the KV head
     * @param block the block
     * @param slot the slot in the block
     * @param x the element
     * @return the code's index
     */
    public long valueCode(int head, int block, int slot, int x) {
        return (((long) head * numBlocks + block) * blockSize + slot) * valueDim + x;
    }

    /** Checks nothing but the format; the record is a carrier (see the class comment). */
    public QuantizedKv {
        Objects.requireNonNull(format, "format");
    }

    /**
     * A carrier that says nothing of which rows hold only normal codes (the kernels scan the codes they read).
     *
     * @param format how one code stands for a number
     * @param numBlocks blocks in each pool
     * @param blockSize tokens per block
     * @param kvHeads KV heads {@code Hkv}
     * @param headDim elements {@code D} per key row
     * @param valueDim elements {@code Dv} per value row
     * @param keyCodes key codes
     * @param valueCodes value codes
     * @param keyScales key scales
     * @param valueScales value scales
     * @param blockTables each sequence's block ids, in position order
     * @param contextLens cached tokens of each sequence
     */
    public QuantizedKv(
            Format format,
            int numBlocks,
            int blockSize,
            int kvHeads,
            int headDim,
            int valueDim,
            byte[] keyCodes,
            byte[] valueCodes,
            float[] keyScales,
            float[] valueScales,
            int[][] blockTables,
            int[] contextLens) {
        this(
                format,
                numBlocks,
                blockSize,
                kvHeads,
                headDim,
                valueDim,
                keyCodes,
                valueCodes,
                keyScales,
                valueScales,
                blockTables,
                contextLens,
                null,
                null);
    }
}
