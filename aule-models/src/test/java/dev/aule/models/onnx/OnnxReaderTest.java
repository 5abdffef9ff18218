package dev.aule.models.onnx;

import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The wire reader on hand-made models and on damaged or foreign bytes. */
class OnnxReaderTest {
    private static final String NAME = "test.onnx";

    @Test
    void readsNodesInitializersAndInputs() {
        OnnxGraph g = OnnxReader.read(model(3), NAME);
        assertEquals(8, g.irVersion());
        assertEquals(11, g.opsetVersion());
        assertEquals(1, g.nodes().size());
        OnnxNode node = g.nodes().getFirst();
        assertEquals("MatMul", node.opType());
        assertEquals(java.util.List.of("x", "w"), node.inputs());
        assertEquals(java.util.List.of("y"), node.outputs());
        assertEquals(2, node.attributes().get("k").i());
        assertArrayEquals(new long[] {2, 3}, g.initializer("w").dims());
        assertArrayEquals(new float[] {0, 1, 2, 3, 4, 5}, g.initializer("w").floats());
        assertEquals(java.util.List.of("x"), g.inputs());
        assertEquals("MatMul", g.producer("y").orElseThrow().opType());
        assertEquals(1, g.consumers("w").size());
    }

    @Test
    void everyTruncationIsAClearError() {
        byte[] full = model(3);
        for (int cut = 0; cut < full.length; cut++) {
            byte[] truncated = Arrays.copyOf(full, cut);
            OnnxFormatException e =
                    assertThrows(OnnxFormatException.class, () -> OnnxReader.read(truncated, NAME), "cut at " + cut);
            assertTrue(e.getMessage().startsWith(NAME + ": "), e.getMessage());
        }
    }

    @Test
    void foreignBytesAreAClearError() {
        byte[] json = "{\"version\": \"1.0\", \"model\": {}}".getBytes(StandardCharsets.UTF_8);
        OnnxFormatException e = assertThrows(OnnxFormatException.class, () -> OnnxReader.read(json, NAME));
        assertTrue(e.getMessage().startsWith(NAME + ": "), e.getMessage());
        Random random = new Random(42);
        for (int i = 0; i < 200; i++) {
            byte[] noise = new byte[1 + random.nextInt(400)];
            random.nextBytes(noise);
            assertThrows(OnnxFormatException.class, () -> OnnxReader.read(noise, NAME), "noise " + i);
        }
    }

    @Test
    void fieldNumbersBeyondProtobufsRangeAreRejectedNotAliased() {
        // The key of field 7 (graph, length-delimited) plus 2^32: cast to int, its field number would read as 7.
        byte[] head = new ProtoWriter().varint(1, 8).toByteArray();
        byte[] key = {(byte) 0xba, (byte) 0x80, (byte) 0x80, (byte) 0x80, (byte) 0x80, 0x01, 0};
        byte[] model = Arrays.copyOf(head, head.length + key.length);
        System.arraycopy(key, 0, model, head.length, key.length);
        OnnxFormatException e = assertThrows(OnnxFormatException.class, () -> OnnxReader.read(model, NAME));
        assertTrue(e.getMessage().contains("not valid protobuf"), e.getMessage());
    }

    @Test
    void tensorWithFewerBytesThanItsDimsIsAClearError() {
        OnnxGraph g = OnnxReader.read(model(2), NAME);
        OnnxFormatException e =
                assertThrows(OnnxFormatException.class, () -> g.initializer("w").floats());
        assertTrue(e.getMessage().contains("'w'") && e.getMessage().contains("raw_data"), e.getMessage());
    }

    @Test
    void missingGraphOrInitializerIsNamed() {
        byte[] noGraph = new ProtoWriter().varint(1, 8).toByteArray();
        assertTrue(assertThrows(OnnxFormatException.class, () -> OnnxReader.read(noGraph, NAME))
                .getMessage()
                .contains("no ModelProto.graph"));
        OnnxGraph g = OnnxReader.read(model(3), NAME);
        assertTrue(assertThrows(OnnxFormatException.class, () -> g.initializer("bias"))
                .getMessage()
                .contains("no initializer 'bias'"));
    }

    /** A model with one MatMul and an initializer w [2, 3] holding {@code rows} rows of raw data. */
    static byte[] model(int rows) {
        ByteBuffer raw = ByteBuffer.allocate(rows * 2 * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < rows * 2; i++) {
            raw.putFloat(i);
        }
        ProtoWriter weight = new ProtoWriter()
                .varint(1, 2)
                .varint(1, 3)
                .varint(2, OnnxTensor.FLOAT)
                .string(8, "w")
                .bytes(9, raw.array());
        ProtoWriter node = new ProtoWriter()
                .string(1, "x")
                .string(1, "w")
                .string(2, "y")
                .string(3, "mm")
                .string(4, "MatMul")
                .message(5, new ProtoWriter().string(1, "k").varint(3, 2).varint(20, 2));
        ProtoWriter graph = new ProtoWriter()
                .message(1, node)
                .string(2, "g")
                .message(5, weight)
                .message(11, new ProtoWriter().string(1, "x"))
                .message(11, new ProtoWriter().string(1, "w"))
                .message(12, new ProtoWriter().string(1, "y"));
        return new ProtoWriter()
                .varint(1, 8)
                .string(2, "test")
                .message(8, new ProtoWriter().string(1, "").varint(2, 11))
                .message(7, graph)
                .toByteArray();
    }
}
