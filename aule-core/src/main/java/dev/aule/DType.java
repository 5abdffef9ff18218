package dev.aule;

/**
 * Element type of a {@link Tensor}. F16 and BF16 are storage types only: every backend
 * converts them to F32 when it reads them and computes and accumulates in F32.
 */
public enum DType {
    /** IEEE 754 binary32. */
    F32(4),
    /** IEEE 754 binary16. */
    F16(2),
    /** bfloat16: the upper 16 bits of a binary32. */
    BF16(2);

    private final int byteSize;

    DType(int byteSize) {
        this.byteSize = byteSize;
    }

    /** {@return the bytes one element occupies} */
    public int byteSize() {
        return byteSize;
    }

    /** Converts one stored 16-bit pattern of this type to float (F16 or BF16 only). */
    float decode16(short bits) {
        return this == F16 ? Float.float16ToFloat(bits) : Float.intBitsToFloat(bits << 16);
    }

    /** Rounds a float to this 16-bit type, to nearest even (F16 or BF16 only). */
    short encode16(float value) {
        if (this == F16) {
            return Float.floatToFloat16(value);
        }
        int bits = Float.floatToRawIntBits(value);
        if (Float.isNaN(value)) {
            return (short) ((bits >>> 16) | 0x40); // keep it a quiet NaN after truncation
        }
        int rounding = 0x7FFF + ((bits >>> 16) & 1);
        return (short) ((bits + rounding) >>> 16);
    }
}
