package dev.aule.models.onnx;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * A tensor of an ONNX graph (an initializer or a constant): its name, dims and element type, with its elements
 * decoded on demand from {@code raw_data} (little-endian, as ONNX stores it) or from the typed fields.
 */
public final class OnnxTensor {
    /** ONNX {@code TensorProto.DataType.FLOAT}. */
    public static final int FLOAT = 1;
    /** ONNX {@code TensorProto.DataType.INT32}. */
    public static final int INT32 = 6;
    /** ONNX {@code TensorProto.DataType.INT64}. */
    public static final int INT64 = 7;

    private final String source;
    private final String name;
    private final long[] dims;
    private final int dataType;
    private final byte[] raw;
    private final int rawFrom;
    private final int rawTo;
    private final float[] floatData;
    private final long[] intData;
    private final boolean external;

    OnnxTensor(
            String source,
            String name,
            long[] dims,
            int dataType,
            byte[] raw,
            int rawFrom,
            int rawTo,
            float[] floatData,
            long[] intData,
            boolean external) {
        this.source = source;
        this.name = name;
        this.dims = dims;
        this.dataType = dataType;
        this.raw = raw;
        this.rawFrom = rawFrom;
        this.rawTo = rawTo;
        this.floatData = floatData;
        this.intData = intData;
        this.external = external;
    }

    /** {@return the tensor's name ({@code ""} for an unnamed constant)} */
    public String name() {
        return name;
    }

    /** {@return a copy of the dims} */
    public long[] dims() {
        return dims.clone();
    }

    /** {@return the ONNX element type ({@link #FLOAT}, {@link #INT64}, ...)} */
    public int dataType() {
        return dataType;
    }

    /** {@return the number of elements the dims describe (1 for a scalar)} */
    public long elementCount() {
        long n = 1;
        for (long d : dims) {
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    /**
     * The elements as floats.
     *
     * @return a new array of {@link #elementCount()} floats
     * @throws OnnxFormatException when the tensor is not FLOAT, keeps its data outside the file, or holds a number
     *     of elements other than its dims say
     */
    public float[] floats() {
        if (dataType != FLOAT) {
            throw fail("has element type " + dataType + ", not FLOAT (1)");
        }
        int count = checkedCount(4);
        if (rawFrom < rawTo) {
            float[] out = new float[count];
            ByteBuffer.wrap(raw, rawFrom, rawTo - rawFrom)
                    .order(ByteOrder.LITTLE_ENDIAN)
                    .asFloatBuffer()
                    .get(out);
            return out;
        }
        if (floatData.length != count) {
            throw fail(
                    "holds " + floatData.length + " floats where its dims " + Arrays.toString(dims) + " need " + count);
        }
        return floatData.clone();
    }

    /**
     * The elements as longs.
     *
     * @return a new array of {@link #elementCount()} values
     * @throws OnnxFormatException when the tensor is not INT64 or INT32, or holds a number of elements other than
     *     its dims say
     */
    public long[] longs() {
        if (dataType != INT64 && dataType != INT32) {
            throw fail("has element type " + dataType + ", not INT64 (7) or INT32 (6)");
        }
        int size = dataType == INT64 ? 8 : 4;
        int count = checkedCount(size);
        if (rawFrom < rawTo) {
            ByteBuffer b = ByteBuffer.wrap(raw, rawFrom, rawTo - rawFrom).order(ByteOrder.LITTLE_ENDIAN);
            long[] out = new long[count];
            for (int i = 0; i < count; i++) {
                out[i] = size == 8 ? b.getLong() : b.getInt();
            }
            return out;
        }
        if (intData.length != count) {
            throw fail(
                    "holds " + intData.length + " values where its dims " + Arrays.toString(dims) + " need " + count);
        }
        return intData.clone();
    }

    /** The element count as an int, checked against raw_data's length when the data is raw. */
    private int checkedCount(int elementBytes) {
        if (external) {
            throw fail("keeps its data in an external file, which this reader does not follow");
        }
        long count;
        try {
            count = elementCount();
        } catch (ArithmeticException e) {
            throw fail("has dims " + Arrays.toString(dims) + " whose element count overflows");
        }
        for (long d : dims) {
            if (d < 0) {
                throw fail("has a negative dim: " + Arrays.toString(dims));
            }
        }
        if (count > Integer.MAX_VALUE - 8) {
            throw fail("has " + count + " elements, more than one Java array holds");
        }
        if (rawFrom < rawTo && (long) (rawTo - rawFrom) != count * elementBytes) {
            throw fail("has " + (rawTo - rawFrom) + " bytes of raw_data where its dims " + Arrays.toString(dims)
                    + " need " + count * elementBytes);
        }
        return (int) count;
    }

    private OnnxFormatException fail(String what) {
        return new OnnxFormatException(source + ": tensor '" + name + "' " + what);
    }

    @Override
    public String toString() {
        return "OnnxTensor[" + name + " " + Arrays.toString(dims) + " type " + dataType + "]";
    }
}
