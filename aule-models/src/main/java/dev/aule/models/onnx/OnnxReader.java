package dev.aule.models.onnx;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads an ONNX model file into an {@link OnnxGraph}: a hand reader of the protobuf fields a weight reader needs
 * ({@code ModelProto.ir_version, opset_import, graph}; {@code GraphProto.node, initializer, input, output};
 * {@code NodeProto.input, output, name, op_type, attribute}; {@code AttributeProto} values;
 * {@code TensorProto.dims, data_type, float_data, int32_data, int64_data, name, raw_data, data_location}). Other
 * fields are skipped. Model files are untrusted input: every length is checked, and a truncated, foreign or incomplete
 * file ends in an {@link OnnxFormatException} naming the file and what is missing.
 */
public final class OnnxReader {
    /*
     * Field numbers of onnx.proto (IR version 3 and later; unchanged since).
     */
    private static final int MODEL_IR_VERSION = 1;
    private static final int MODEL_GRAPH = 7;
    private static final int MODEL_OPSET_IMPORT = 8;
    private static final int OPSET_DOMAIN = 1;
    private static final int OPSET_VERSION = 2;
    private static final int GRAPH_NODE = 1;
    private static final int GRAPH_INITIALIZER = 5;
    private static final int GRAPH_INPUT = 11;
    private static final int GRAPH_OUTPUT = 12;
    private static final int VALUE_INFO_NAME = 1;
    private static final int NODE_INPUT = 1;
    private static final int NODE_OUTPUT = 2;
    private static final int NODE_NAME = 3;
    private static final int NODE_OP_TYPE = 4;
    private static final int NODE_ATTRIBUTE = 5;
    private static final int ATTR_NAME = 1;
    private static final int ATTR_F = 2;
    private static final int ATTR_I = 3;
    private static final int ATTR_S = 4;
    private static final int ATTR_T = 5;
    private static final int ATTR_FLOATS = 7;
    private static final int ATTR_INTS = 8;
    private static final int TENSOR_DIMS = 1;
    private static final int TENSOR_DATA_TYPE = 2;
    private static final int TENSOR_FLOAT_DATA = 4;
    private static final int TENSOR_INT32_DATA = 5;
    private static final int TENSOR_INT64_DATA = 7;
    private static final int TENSOR_NAME = 8;
    private static final int TENSOR_RAW_DATA = 9;
    private static final int TENSOR_DATA_LOCATION = 14;

    private OnnxReader() {}

    /**
     * Reads the model in a file.
     *
     * @param file an ONNX model file (at most 2 GiB, weights inside the file)
     * @return its graph
     * @throws OnnxFormatException when the file is not a readable ONNX model
     * @throws UncheckedIOException when the file cannot be read
     */
    public static OnnxGraph read(Path file) {
        java.util.Objects.requireNonNull(file, "file");
        byte[] bytes;
        try {
            long size = Files.size(file);
            if (size > Integer.MAX_VALUE - 8) {
                throw new OnnxFormatException(file + ": " + size
                        + " bytes, more than this reader takes (2 GiB; larger models keep external data)");
            }
            bytes = Files.readAllBytes(file);
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot read the model: " + e.getMessage(), e);
        }
        return read(bytes, file.toString());
    }

    /**
     * Reads a model from bytes.
     *
     * @param bytes the serialized {@code ModelProto}
     * @param source what messages call it (a file name)
     * @return its graph
     * @throws OnnxFormatException when the bytes are not a readable ONNX model
     */
    public static OnnxGraph read(byte[] bytes, String source) {
        java.util.Objects.requireNonNull(bytes, "bytes");
        java.util.Objects.requireNonNull(source, "source");
        if (bytes.length == 0) {
            throw new OnnxFormatException(source + ": the file is empty, not an ONNX model");
        }
        WireReader model = new WireReader(bytes, 0, bytes.length, source, "ModelProto");
        long irVersion = -1;
        long opset = 0;
        WireReader graph = null;
        while (model.hasMore()) {
            long key = model.key();
            switch ((int) (key >>> 3)) {
                case MODEL_IR_VERSION -> {
                    model.expect(key, WireReader.VARINT);
                    irVersion = model.varint();
                }
                case MODEL_OPSET_IMPORT -> {
                    model.expect(key, WireReader.LENGTH_DELIMITED);
                    long[] domainVersion = opset(model.nested("ModelProto.opset_import"));
                    if (domainVersion[0] == 1) {
                        opset = domainVersion[1];
                    }
                }
                case MODEL_GRAPH -> {
                    model.expect(key, WireReader.LENGTH_DELIMITED);
                    graph = model.nested("GraphProto");
                }
                default -> model.skip(key);
            }
        }
        if (irVersion < 0) {
            throw new OnnxFormatException(source + ": no ModelProto.ir_version: not an ONNX model");
        }
        if (graph == null) {
            throw new OnnxFormatException(source + ": no ModelProto.graph: not an ONNX model, or a truncated one");
        }
        return graph(graph, source, irVersion, opset);
    }

    /** {@code [1 if the default domain else 0, version]}. */
    private static long[] opset(WireReader r) {
        String domain = "";
        long version = 0;
        while (r.hasMore()) {
            long key = r.key();
            switch ((int) (key >>> 3)) {
                case OPSET_DOMAIN -> {
                    r.expect(key, WireReader.LENGTH_DELIMITED);
                    domain = r.string();
                }
                case OPSET_VERSION -> {
                    r.expect(key, WireReader.VARINT);
                    version = r.varint();
                }
                default -> r.skip(key);
            }
        }
        return new long[] {domain.isEmpty() || domain.equals("ai.onnx") ? 1 : 0, version};
    }

    private static OnnxGraph graph(WireReader r, String source, long irVersion, long opset) {
        List<OnnxNode> nodes = new ArrayList<>();
        Map<String, OnnxTensor> initializers = new LinkedHashMap<>();
        List<String> inputs = new ArrayList<>();
        List<String> outputs = new ArrayList<>();
        while (r.hasMore()) {
            long key = r.key();
            switch ((int) (key >>> 3)) {
                case GRAPH_NODE -> {
                    r.expect(key, WireReader.LENGTH_DELIMITED);
                    nodes.add(node(r.nested("NodeProto #" + nodes.size()), source));
                }
                case GRAPH_INITIALIZER -> {
                    r.expect(key, WireReader.LENGTH_DELIMITED);
                    OnnxTensor t = tensor(r.nested("TensorProto initializer #" + initializers.size()), source);
                    initializers.put(t.name(), t);
                }
                case GRAPH_INPUT -> {
                    r.expect(key, WireReader.LENGTH_DELIMITED);
                    inputs.add(valueInfoName(r.nested("GraphProto.input")));
                }
                case GRAPH_OUTPUT -> {
                    r.expect(key, WireReader.LENGTH_DELIMITED);
                    outputs.add(valueInfoName(r.nested("GraphProto.output")));
                }
                default -> r.skip(key);
            }
        }
        if (nodes.isEmpty()) {
            throw new OnnxFormatException(source + ": the graph has no nodes");
        }
        return new OnnxGraph(source, irVersion, opset, nodes, initializers, inputs, outputs);
    }

    private static String valueInfoName(WireReader r) {
        String name = "";
        while (r.hasMore()) {
            long key = r.key();
            if ((key >>> 3) == VALUE_INFO_NAME) {
                r.expect(key, WireReader.LENGTH_DELIMITED);
                name = r.string();
            } else {
                r.skip(key);
            }
        }
        return name;
    }

    private static OnnxNode node(WireReader r, String source) {
        String name = "";
        String opType = null;
        List<String> inputs = new ArrayList<>();
        List<String> outputs = new ArrayList<>();
        Map<String, OnnxAttribute> attributes = new HashMap<>();
        while (r.hasMore()) {
            long key = r.key();
            switch ((int) (key >>> 3)) {
                case NODE_INPUT -> {
                    r.expect(key, WireReader.LENGTH_DELIMITED);
                    inputs.add(r.string());
                }
                case NODE_OUTPUT -> {
                    r.expect(key, WireReader.LENGTH_DELIMITED);
                    outputs.add(r.string());
                }
                case NODE_NAME -> {
                    r.expect(key, WireReader.LENGTH_DELIMITED);
                    name = r.string();
                }
                case NODE_OP_TYPE -> {
                    r.expect(key, WireReader.LENGTH_DELIMITED);
                    opType = r.string();
                }
                case NODE_ATTRIBUTE -> {
                    r.expect(key, WireReader.LENGTH_DELIMITED);
                    OnnxAttribute a = attribute(r.nested("AttributeProto"), source);
                    attributes.put(a.name(), a);
                }
                default -> r.skip(key);
            }
        }
        if (opType == null) {
            throw r.fail("node '" + name + "' has no op_type");
        }
        return new OnnxNode(name, opType, inputs, outputs, attributes);
    }

    private static OnnxAttribute attribute(WireReader r, String source) {
        String name = "";
        float f = 0;
        long i = 0;
        String s = "";
        OnnxTensor t = null;
        FloatList floats = new FloatList();
        LongList ints = new LongList();
        while (r.hasMore()) {
            long key = r.key();
            switch ((int) (key >>> 3)) {
                case ATTR_NAME -> {
                    r.expect(key, WireReader.LENGTH_DELIMITED);
                    name = r.string();
                }
                case ATTR_F -> {
                    r.expect(key, WireReader.FIXED32);
                    f = Float.intBitsToFloat(r.fixed32());
                }
                case ATTR_I -> {
                    r.expect(key, WireReader.VARINT);
                    i = r.varint();
                }
                case ATTR_S -> {
                    r.expect(key, WireReader.LENGTH_DELIMITED);
                    s = r.string();
                }
                case ATTR_T -> {
                    r.expect(key, WireReader.LENGTH_DELIMITED);
                    t = tensor(r.nested("TensorProto of an attribute"), source);
                }
                case ATTR_FLOATS -> r.floats(key, floats::add);
                case ATTR_INTS -> r.int64s(key, ints::add);
                default -> r.skip(key);
            }
        }
        return new OnnxAttribute(name, f, i, s, t, floats.toArray(), ints.toArray());
    }

    private static OnnxTensor tensor(WireReader r, String source) {
        String name = "";
        LongList dims = new LongList();
        int dataType = 0;
        FloatList floatData = new FloatList();
        LongList intData = new LongList();
        int rawFrom = 0;
        int rawTo = 0;
        boolean external = false;
        while (r.hasMore()) {
            long key = r.key();
            switch ((int) (key >>> 3)) {
                case TENSOR_DIMS -> r.int64s(key, dims::add);
                case TENSOR_DATA_TYPE -> {
                    r.expect(key, WireReader.VARINT);
                    dataType = (int) r.varint();
                }
                case TENSOR_FLOAT_DATA -> r.floats(key, floatData::add);
                // int32_data holds INT32 values as varints; int64_data INT64 ones.
                case TENSOR_INT32_DATA, TENSOR_INT64_DATA -> r.int64s(key, intData::add);
                case TENSOR_NAME -> {
                    r.expect(key, WireReader.LENGTH_DELIMITED);
                    name = r.string();
                }
                case TENSOR_RAW_DATA -> {
                    r.expect(key, WireReader.LENGTH_DELIMITED);
                    int[] range = r.lengthDelimited();
                    rawFrom = range[0];
                    rawTo = range[1];
                }
                case TENSOR_DATA_LOCATION -> {
                    r.expect(key, WireReader.VARINT);
                    external = r.varint() == 1;
                }
                default -> r.skip(key);
            }
        }
        return new OnnxTensor(
                source,
                name,
                dims.toArray(),
                dataType,
                r.bytes(),
                rawFrom,
                rawTo,
                floatData.toArray(),
                intData.toArray(),
                external);
    }

    /** A growable float list (attributes and float_data are read one value at a time). */
    private static final class FloatList {
        private float[] values = new float[8];
        private int size;

        void add(float v) {
            if (size == values.length) {
                values = java.util.Arrays.copyOf(values, size * 2);
            }
            values[size++] = v;
        }

        float[] toArray() {
            return java.util.Arrays.copyOf(values, size);
        }
    }

    /** A growable long list. */
    private static final class LongList {
        private long[] values = new long[8];
        private int size;

        void add(long v) {
            if (size == values.length) {
                values = java.util.Arrays.copyOf(values, size * 2);
            }
            values[size++] = v;
        }

        long[] toArray() {
            return java.util.Arrays.copyOf(values, size);
        }
    }
}
