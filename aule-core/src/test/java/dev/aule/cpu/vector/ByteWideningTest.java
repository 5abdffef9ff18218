package dev.aule.cpu.vector;

import dev.aule.spi.QuantizedKv;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Every one of the 256 codes of each format widens a vector at a time to the scalar decoder's bits. */
class ByteWideningTest {
    @Test
    void everyCodeWidensToTheScalarDecodersBits() {
        int dim = 256 + 2 * ByteWidening.B.length(); // the codes, then a run of subnormal and negative zero codes
        byte[] codes = new byte[dim];
        for (int i = 0; i < dim; i++) {
            codes[i] = (byte) (i < 256 ? i : (i % 2 == 0 ? 0x80 | (i % 8) : i % 8));
        }
        for (QuantizedKv.Format format : QuantizedKv.Format.values()) {
            for (float scale : new float[] {1f, 0.375f, 3e-5f}) {
                float[] dst = new float[dim];
                ByteWidening.dequantize(format, codes, 0, dim, 1, scale, dst, 0, dim);
                for (int i = 0; i < dim; i++) {
                    float want = format.decode(codes[i]) * scale;
                    String where = format + " code 0x" + Integer.toHexString(codes[i] & 0xFF) + " scale " + scale;
                    if (Float.isNaN(want)) {
                        assertTrue(Float.isNaN(dst[i]), where);
                    } else {
                        assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(dst[i]), where);
                    }
                }
            }
        }
    }
}
