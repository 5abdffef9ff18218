package dev.aule.bench;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/**
 * The bytes of a one-node ONNX model, written straight in protobuf wire format so the bench needs
 * no ONNX or protobuf library: a graph with float inputs, one node (with int and float
 * attributes) and one float output. Field numbers are those of onnx.proto (ModelProto,
 * GraphProto, NodeProto, AttributeProto, ValueInfoProto, TypeProto, TensorShapeProto).
 */
final class OnnxModel {
    private static final int IR_VERSION = 10;
    private static final int DEFAULT_OPSET = 21;
    private static final int ELEM_FLOAT = 1;
    private static final int ATTRIBUTE_FLOAT = 1;
    private static final int ATTRIBUTE_INT = 2;

    private final Message graph = new Message();
    private final Message node = new Message();
    private final String domain;

    /** A model whose single node is {@code opType} of {@code domain} ("" for the standard ops). */
    OnnxModel(String opType, String domain) {
        this.domain = domain;
        node.string(3, "node").string(4, opType).string(7, domain);
    }

    /** A float input of the given shape, fed to the node as its next input. */
    OnnxModel input(String name, long... shape) {
        node.string(1, name);
        graph.message(11, valueInfo(name, shape));
        return this;
    }

    /** The node's float output of the given shape. */
    OnnxModel output(String name, long... shape) {
        node.string(2, name);
        graph.message(12, valueInfo(name, shape));
        return this;
    }

    OnnxModel attribute(String name, long value) {
        node.message(5, new Message().string(1, name).varint(3, value).varint(20, ATTRIBUTE_INT));
        return this;
    }

    OnnxModel attribute(String name, float value) {
        node.message(
                5,
                new Message()
                        .string(1, name)
                        .fixed32(2, Float.floatToRawIntBits(value))
                        .varint(20, ATTRIBUTE_FLOAT));
        return this;
    }

    byte[] toBytes() {
        Message model = new Message().varint(1, IR_VERSION).string(2, "aule-bench");
        model.message(7, new Message().message(1, node).string(2, "attention").append(graph));
        model.message(8, new Message().string(1, "").varint(2, DEFAULT_OPSET));
        if (!domain.isEmpty()) {
            model.message(8, new Message().string(1, domain).varint(2, 1));
        }
        return model.bytes();
    }

    private static Message valueInfo(String name, long[] shape) {
        Message dims = new Message();
        for (long dim : shape) {
            dims.message(1, new Message().varint(1, dim));
        }
        Message tensorType = new Message().varint(1, ELEM_FLOAT).message(2, dims);
        return new Message().string(1, name).message(2, new Message().message(1, tensorType));
    }

    /** Protobuf wire format: varints (type 0), 32-bit (type 5) and length-delimited fields (type 2). */
    private static final class Message {
        private final ByteArrayOutputStream out = new ByteArrayOutputStream();

        Message varint(int field, long value) {
            tag(field, 0);
            raw(value);
            return this;
        }

        Message fixed32(int field, int value) {
            tag(field, 5);
            for (int i = 0; i < 4; i++) {
                out.write(value >>> (8 * i));
            }
            return this;
        }

        Message string(int field, String value) {
            return bytes(field, value.getBytes(StandardCharsets.UTF_8));
        }

        Message message(int field, Message value) {
            return bytes(field, value.bytes());
        }

        Message append(Message other) {
            out.writeBytes(other.bytes());
            return this;
        }

        byte[] bytes() {
            return out.toByteArray();
        }

        private Message bytes(int field, byte[] value) {
            tag(field, 2);
            raw(value.length);
            out.writeBytes(value);
            return this;
        }

        private void tag(int field, int wireType) {
            raw(((long) field << 3) | wireType);
        }

        private void raw(long value) {
            while ((value & ~0x7FL) != 0) {
                out.write((int) ((value & 0x7F) | 0x80));
                value >>>= 7;
            }
            out.write((int) value);
        }
    }
}
