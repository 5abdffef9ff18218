package dev.aule.serving;

import dev.aule.DType;
import dev.aule.spi.QuantizedKv;

import java.util.Locale;
import java.util.Objects;

/**
 * How a cache stores keys and values: a {@link DType} (F32, F16, BF16: tensors the kernels read in place or widen),
 * or 8-bit codes with float scales (INT8, FP8 E4M3, FP8 E5M2; vLLM's {@code kv_cache_dtype} {@code "int8"},
 * {@code "fp8_e4m3"}, {@code "fp8_e5m2"}). Keys are quantized after RoPE, on the way into the cache.
 *
 * <ul>
 *   <li>{@link #INT8}: symmetric, a scale per (block, KV head) for keys and one for values, {@code max |x| / 127}
 *       of the block's rows; a new row whose magnitude the scale cannot represent re-quantizes the block's rows to
 *       the larger scale. {@link PagedKvCache}'s block is its block; {@link KvCache}'s is a run of
 *       {@link KvCache#QUANT_BLOCK} tokens.
 *   <li>{@link #FP8_E4M3} (largest 448, no infinity) and {@link #FP8_E5M2} (largest 57344): the code of {@code x /
 *       scale} rounded to nearest even and saturated, read as {@code fp8 * scale}; the scale per KV head or per
 *       tensor is given at creation (vLLM's {@code k_scale}, {@code v_scale}), 1 by default.
 * </ul>
 */
public enum KvFormat {
    /** 32-bit float. */
    F32(DType.F32, null),
    /** IEEE binary16. */
    F16(DType.F16, null),
    /** bfloat16. */
    BF16(DType.BF16, null),
    /** Symmetric 8-bit integers, a scale per block and KV head. */
    INT8(null, QuantizedKv.Format.INT8),
    /** OCP FP8 E4M3, a scale per KV head given at creation. */
    FP8_E4M3(null, QuantizedKv.Format.FP8_E4M3),
    /** OCP FP8 E5M2, a scale per KV head given at creation. */
    FP8_E5M2(null, QuantizedKv.Format.FP8_E5M2);

    private final DType dtype;
    private final QuantizedKv.Format code;

    KvFormat(DType dtype, QuantizedKv.Format code) {
        this.dtype = dtype;
        this.code = code;
    }

    /** {@return whether values are stored as 8-bit codes with scales} */
    public boolean quantized() {
        return code != null;
    }

    /** {@return the tensor element type of an unquantized format; null for a quantized one} */
    public DType dtype() {
        return dtype;
    }

    /** {@return the code format of a quantized format; null for an unquantized one} */
    public QuantizedKv.Format code() {
        return code;
    }

    /** {@return the bytes of one stored element, scales not counted} */
    public int bytesPerElement() {
        return dtype != null ? dtype.byteSize() : 1;
    }

    /** {@return the format's command-line name: {@code f32}, {@code f16}, {@code bf16}, {@code int8}, {@code fp8-e4m3}, {@code fp8-e5m2}} */
    public String cliName() {
        return name().toLowerCase(Locale.ROOT).replace('_', '-');
    }

    /**
     * The format of a name: {@link #cliName()}, the enum name, or vLLM's ({@code fp8_e4m3}), in any case.
     *
     * @param name the name
     * @return the format
     * @throws IllegalArgumentException when no format has that name
     */
    public static KvFormat parse(String name) {
        Objects.requireNonNull(name, "name");
        String key = name.trim().toLowerCase(Locale.ROOT).replace('_', '-');
        for (KvFormat f : values()) {
            if (f.cliName().equals(key)) {
                return f;
            }
        }
        throw new IllegalArgumentException(
                "cache format: '" + name + "' is none of f32, f16, bf16, int8, fp8-e4m3, fp8-e5m2");
    }

    /**
     * The format that stores {@code dtype}.
     *
     * @param dtype F32, F16 or BF16
     * @return {@link #F32}, {@link #F16} or {@link #BF16}
     */
    public static KvFormat of(DType dtype) {
        return switch (dtype) {
            case F32 -> F32;
            case F16 -> F16;
            case BF16 -> BF16;
        };
    }
}
