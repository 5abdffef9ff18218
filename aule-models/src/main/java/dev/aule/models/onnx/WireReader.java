package dev.aule.models.onnx;

import java.nio.charset.StandardCharsets;

/**
 * A bounds-checked cursor over protobuf wire format in {@code [start, end)} of a byte array: varints, fixed
 * 32/64-bit values and length-delimited fields. Every length is checked against the bytes that remain before it is
 * used, so a truncated or foreign file ends in an {@link OnnxFormatException} naming the file and the message being
 * read, never in an index error or a huge allocation.
 */
final class WireReader {
    static final int VARINT = 0;
    static final int FIXED64 = 1;
    static final int LENGTH_DELIMITED = 2;
    static final int FIXED32 = 5;
    private static final long MAX_FIELD = (1L << 29) - 1;

    private final byte[] bytes;
    private final int end;
    private final String source;
    private final String message;
    private int pos;

    WireReader(byte[] bytes, int start, int end, String source, String message) {
        this.bytes = bytes;
        this.pos = start;
        this.end = end;
        this.source = source;
        this.message = message;
    }

    boolean hasMore() {
        return pos < end;
    }

    /** The next field's key ({@code field << 3 | wireType}); wire types 3 and 4 (groups) and field 0 are rejected. */
    long key() {
        long key = varint();
        int wireType = (int) (key & 7);
        // Field numbers are 1 to 2^29 - 1: a larger key would alias a real field once cast to int.
        if ((key >>> 3) == 0
                || (key >>> 3) > MAX_FIELD
                || (wireType != VARINT && wireType != FIXED64 && wireType != LENGTH_DELIMITED && wireType != FIXED32)) {
            throw fail("field key " + key + " (field " + (key >>> 3) + ", wire type " + wireType
                    + ") is not valid protobuf: not an ONNX file, or a damaged one");
        }
        return key;
    }

    long varint() {
        long value = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            if (pos >= end) {
                throw fail("a varint runs past the end of the message: the file is truncated");
            }
            byte b = bytes[pos++];
            value |= (long) (b & 0x7f) << shift;
            if (b >= 0) {
                return value;
            }
        }
        throw fail("a varint is longer than 10 bytes: not an ONNX file, or a damaged one");
    }

    int fixed32() {
        need(4, "a 32-bit value");
        int v = (bytes[pos] & 0xff)
                | (bytes[pos + 1] & 0xff) << 8
                | (bytes[pos + 2] & 0xff) << 16
                | (bytes[pos + 3] & 0xff) << 24;
        pos += 4;
        return v;
    }

    long fixed64() {
        long lo = fixed32() & 0xffffffffL;
        long hi = fixed32() & 0xffffffffL;
        return lo | hi << 32;
    }

    /** The byte range {@code [from, to)} of a length-delimited field, consumed. */
    int[] lengthDelimited() {
        long length = varint();
        if (length < 0 || length > end - pos) {
            throw fail("a field of " + length + " bytes runs past the end of its message (" + (end - pos)
                    + " bytes left): the file is truncated or damaged");
        }
        int from = pos;
        pos += (int) length;
        return new int[] {from, pos};
    }

    String string() {
        int[] r = lengthDelimited();
        return new String(bytes, r[0], r[1] - r[0], StandardCharsets.UTF_8);
    }

    WireReader nested(String nestedMessage) {
        int[] r = lengthDelimited();
        return new WireReader(bytes, r[0], r[1], source, nestedMessage);
    }

    /** Skips a field of the given wire type. */
    void skip(long key) {
        switch ((int) (key & 7)) {
            case VARINT -> varint();
            case FIXED64 -> advance(8, "a 64-bit value");
            case LENGTH_DELIMITED -> lengthDelimited();
            case FIXED32 -> advance(4, "a 32-bit value");
            default -> throw fail("wire type " + (key & 7) + " cannot be skipped");
        }
    }

    /** Reads a repeated int64 field, packed or one element. */
    void int64s(long key, LongSink sink) {
        if ((key & 7) == LENGTH_DELIMITED) {
            WireReader packed = nested(message);
            while (packed.hasMore()) {
                sink.accept(packed.varint());
            }
        } else {
            expect(key, VARINT);
            sink.accept(varint());
        }
    }

    /** Reads a repeated float field, packed or one element. */
    void floats(long key, FloatSink sink) {
        if ((key & 7) == LENGTH_DELIMITED) {
            int[] r = lengthDelimited();
            if ((r[1] - r[0]) % 4 != 0) {
                throw fail("packed floats of " + (r[1] - r[0]) + " bytes, not a multiple of 4");
            }
            WireReader packed = new WireReader(bytes, r[0], r[1], source, message);
            while (packed.hasMore()) {
                sink.accept(Float.intBitsToFloat(packed.fixed32()));
            }
        } else {
            expect(key, FIXED32);
            sink.accept(Float.intBitsToFloat(fixed32()));
        }
    }

    void expect(long key, int wireType) {
        if ((key & 7) != wireType) {
            throw fail("field " + (key >>> 3) + " has wire type " + (key & 7) + " where ONNX has " + wireType
                    + ": not an ONNX file, or a damaged one");
        }
    }

    byte[] bytes() {
        return bytes;
    }

    OnnxFormatException fail(String what) {
        return new OnnxFormatException(source + ": " + message + ": " + what);
    }

    private void need(int count, String what) {
        if (end - pos < count) {
            throw fail(what + " runs past the end of the message: the file is truncated");
        }
    }

    private void advance(int count, String what) {
        need(count, what);
        pos += count;
    }

    @FunctionalInterface
    interface LongSink {
        void accept(long value);
    }

    @FunctionalInterface
    interface FloatSink {
        void accept(float value);
    }
}
