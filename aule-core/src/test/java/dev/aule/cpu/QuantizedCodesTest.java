package dev.aule.cpu;

import dev.aule.spi.QuantizedKv.Format;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The INT8 and FP8 codecs: every code decoded exactly, encoding to the nearest code, and the kernels' widening. */
class QuantizedCodesTest {

    /** A decoder from the format's definition: sign, biased exponent, mantissa; subnormals at the minimum exponent. */
    private static float scalarDecode(Format format, int code) {
        int b = code & 0xFF;
        if (format == Format.INT8) {
            return (byte) b;
        }
        int mantissaBits = format == Format.FP8_E4M3 ? 3 : 2;
        int exponentBits = 7 - mantissaBits;
        int bias = (1 << (exponentBits - 1)) - 1;
        int exponent = (b >> mantissaBits) & ((1 << exponentBits) - 1);
        int mantissa = b & ((1 << mantissaBits) - 1);
        double sign = (b & 0x80) != 0 ? -1 : 1;
        if (format == Format.FP8_E4M3 && exponent == 15 && mantissa == 7) {
            return Float.NaN;
        }
        if (format == Format.FP8_E5M2 && exponent == 31) {
            return mantissa != 0 ? Float.NaN : (float) (sign * Double.POSITIVE_INFINITY);
        }
        double value = exponent == 0
                ? mantissa * Math.pow(2, 1 - bias - mantissaBits)
                : (1 + mantissa / (double) (1 << mantissaBits)) * Math.pow(2, exponent - bias);
        return (float) (sign * value);
    }

    @Test
    void everyCodeDecodesAsTheFormatDefinesIt() {
        for (Format format : Format.values()) {
            for (int c = 0; c < 256; c++) {
                float expected = scalarDecode(format, c);
                float got = format.decode((byte) c);
                if (Float.isNaN(expected)) {
                    assertTrue(Float.isNaN(got), format + " code " + c);
                } else {
                    assertEquals(
                            Float.floatToRawIntBits(expected), Float.floatToRawIntBits(got), format + " code " + c);
                }
            }
        }
        assertEquals(448f, Format.FP8_E4M3.decode((byte) 0x7E));
        assertEquals(57344f, Format.FP8_E5M2.decode((byte) 0x7B));
        assertEquals(0x1p-9f, Format.FP8_E4M3.decode((byte) 0x01)); // smallest subnormals
        assertEquals(0x1p-16f, Format.FP8_E5M2.decode((byte) 0x01));
    }

    /** Both tile maths widen all 256 codes bit for bit as decode times the scale, whole vectors and tails. */
    @Test
    void kernelsWidenEveryCodeAsTheScalarDecoder() {
        byte[] codes = new byte[2 + 256 + 19];
        for (int i = 0; i < codes.length; i++) {
            codes[i] = (byte) (i - 2);
        }
        for (TileMath math : new TileMath[] {new ScalarTileMath(), new VectorTileMath()}) {
            for (Format format : Format.values()) {
                for (float scale : new float[] {1f, 0.013f, 3.5e3f, 0f}) {
                    for (int dim : new int[] {256, 19, 7}) {
                        int rows = (codes.length - 2) / dim;
                        int stride = dim + 5;
                        float[] dst = new float[3 + rows * stride];
                        math.dequantize(format, codes, 2, dim, rows, scale, dst, 3, stride);
                        for (int r = 0; r < rows; r++) {
                            for (int x = 0; x < dim; x++) {
                                float expected = format.decode(codes[2 + r * dim + x]) * scale;
                                float got = dst[3 + r * stride + x];
                                String where = math.description() + " " + format + " scale " + scale + " dim " + dim
                                        + " code " + codes[2 + r * dim + x];
                                if (Float.isNaN(expected)) {
                                    assertTrue(Float.isNaN(got), where);
                                } else {
                                    assertEquals(
                                            Float.floatToRawIntBits(expected), Float.floatToRawIntBits(got), where);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /** Each finite code is its own value's code; encoding any float picks the nearest code, ties to an even one. */
    @Test
    void encodingRoundsToTheNearestCodeTiesToEvenAndSaturates() {
        for (Format format : Format.values()) {
            for (int c = 0; c < 256; c++) {
                float value = format.decode((byte) c);
                if (Float.isFinite(value) && !(format == Format.INT8 && c == 0x80)) {
                    assertEquals((byte) c, format.encode(value), format + " code " + c);
                }
            }
            SplittableRandom rnd = new SplittableRandom(format.ordinal());
            for (int i = 0; i < 20_000; i++) {
                float x = (float) ((rnd.nextBoolean() ? -1 : 1)
                        * Math.pow(2, rnd.nextDouble(-20, Math.log(format.max()) / Math.log(2) + 1)));
                if (i % 5 == 0) { // exact midpoints between neighbouring codes
                    int c = rnd.nextInt(256);
                    float a = format.decode((byte) c);
                    float b = format.decode((byte) (c + 1));
                    if (Float.isFinite(a) && Float.isFinite(b) && Math.signum(a) == Math.signum(b)) {
                        x = (a + b) / 2;
                    }
                }
                byte code = format.encode(x);
                float got = format.decode(code);
                float clamped = Math.max(-format.max(), Math.min(format.max(), x));
                double best = Double.MAX_VALUE;
                for (int c = 0; c < 256; c++) {
                    float v = format.decode((byte) c);
                    if (Float.isFinite(v) && Math.abs(v) <= format.max()) {
                        best = Math.min(best, Math.abs((double) v - clamped));
                    }
                }
                double error = Math.abs((double) got - clamped);
                assertEquals(best, error, 0.0, format + " x " + x + " -> " + got);
                if (error != 0 && nextCodeTies(format, code, clamped)) {
                    // A tie: the even mantissa (lowest bit clear) wins.
                    assertEquals(0, code & 1, format + " tie at " + x + " -> code " + code);
                }
                assertEquals(Math.signum(clamped), Math.signum(got) == 0 ? Math.signum(clamped) : Math.signum(got));
            }
            assertEquals(format.max(), format.decode(format.encode(1e30f)));
            assertEquals(-format.max(), format.decode(format.encode(-1e30f)));
            assertEquals(0f, format.decode(format.encode(0f)));
        }
    }

    /** Whether another code is exactly as near to {@code x} as {@code code}. */
    private static boolean nextCodeTies(Format format, byte code, float x) {
        double error = Math.abs((double) format.decode(code) - x);
        for (int c = 0; c < 256; c++) {
            float v = format.decode((byte) c);
            if ((byte) c != code
                    && Float.isFinite(v)
                    && v != format.decode(code)
                    && Math.abs((double) v - x) == error) {
                return true;
            }
        }
        return false;
    }
}
