package dev.aule.cpu.vector;

import dev.aule.spi.QuantizedKv;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every one of the 256 codes of each format widens a vector at a time to the scalar decoder's bits, and the scan that
 * picks the shorter widening finds every code it does not take, at any place in a row.
 */
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

    /**
     * Whether a code is a normal number of its FP8 format: E4M3, exponent field not zero and not the NaN pattern
     * 0x7F (E4M3 has no infinity); E5M2, exponent field neither all zeros nor all ones.
     */
    private static boolean normal(QuantizedKv.Format format, int code) {
        if (format == QuantizedKv.Format.FP8_E4M3) {
            return (code & 0x78) != 0 && (code & 0x7F) != 0x7F;
        }
        int exponent = (code >>> 2) & 0x1F;
        return exponent != 0 && exponent != 0x1F;
    }

    @Test
    void theScanFindsEveryCodeTheShortWideningDoesNotTake() {
        java.util.SplittableRandom rnd = new java.util.SplittableRandom(5);
        for (QuantizedKv.Format format :
                new QuantizedKv.Format[] {QuantizedKv.Format.FP8_E4M3, QuantizedKv.Format.FP8_E5M2}) {
            for (int dim : new int[] {8, 16, 48, 64, 80, 128, 144, 256}) {
                int keys = 8;
                for (int code = 0; code < 256; code++) {
                    byte[] codes = new byte[3 + keys * dim];
                    for (int i = 0; i < codes.length; i++) {
                        int c;
                        do {
                            c = rnd.nextInt(256);
                        } while (!normal(format, c));
                        codes[i] = (byte) c;
                    }
                    int row = rnd.nextInt(keys);
                    codes[3 + row * dim + rnd.nextInt(dim)] = (byte) code;
                    long want = normal(format, code) ? 0 : 1L << row;
                    String where = format + " code 0x" + Integer.toHexString(code) + " dim " + dim;
                    assertEquals(want, ByteWidening.abnormalKeys(format, codes, 3, dim, keys), where);
                    // Over a quarter of the rows: the scan gives up.
                    if (want != 0) {
                        for (int r = 0; r < keys / 4; r++) {
                            codes[3 + ((row + 1 + r) % keys) * dim] = (byte) code;
                        }
                        assertEquals(
                                ByteWidening.MOSTLY_ABNORMAL,
                                ByteWidening.abnormalKeys(format, codes, 3, dim, keys),
                                where + ", " + (keys / 4 + 1) + " rows");
                    }
                }
            }
        }
    }

    @Test
    void theShortWideningGivesTheDecodersBitsShortByThePowerOfTwoForEveryNormalCode() {
        for (QuantizedKv.Format format : QuantizedKv.Format.values()) {
            byte[] codes = new byte[ByteWidening.B.length()];
            for (int code = 0; code < 256; code++) {
                if (format != QuantizedKv.Format.INT8 && !normal(format, code)) {
                    continue;
                }
                java.util.Arrays.fill(codes, (byte) code);
                float got = ByteWidening.widenNormal(
                                jdk.incubator.vector.ByteVector.fromArray(ByteWidening.B, codes, 0),
                                format == QuantizedKv.Format.INT8,
                                ByteWidening.normalShift(format),
                                ByteWidening.normalConstants(format))
                        .lane(0);
                // FP8: the code's value short by the format's power of two, which the kernels take elsewhere.
                float want = format == QuantizedKv.Format.INT8
                        ? format.decode((byte) code)
                        : format.decode((byte) code) / ByteWidening.normalBias(format);
                assertEquals(
                        Float.floatToRawIntBits(want),
                        Float.floatToRawIntBits(got),
                        format + " code 0x" + Integer.toHexString(code));
            }
        }
    }
}
