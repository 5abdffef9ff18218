package dev.aule.models;

import dev.aule.models.onnx.OnnxFormatException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Configuration detection on all-MiniLM-L6-v2, and the errors for files that are not a BERT encoder. */
class BertOnnxTest {
    @Test
    void detectsMiniLmConfiguration() {
        BertConfig c = MiniLm.encoder().config();
        assertEquals(6, c.layers());
        assertEquals(384, c.hidden());
        assertEquals(12, c.heads());
        assertEquals(32, c.headDim());
        assertEquals(1536, c.intermediate());
        assertEquals(30522, c.vocabSize());
        assertEquals(512, c.maxPositions());
        assertEquals(2, c.typeVocabSize());
        assertEquals(1e-12, c.layerNormEps(), 1e-18);
        assertEquals(BertConfig.Activation.GELU_ERF, c.activation());
        assertEquals(BertConfig.Pooling.MEAN, c.pooling());
    }

    @Test
    void givenConfigurationOfAnotherShapeIsRejectedNamingTheTensor() {
        BertConfig detected = MiniLm.encoder().config();
        BertConfig wrong =
                new BertConfig(6, 384, 12, 1024, 30522, 512, 2, 1e-12, detected.activation(), detected.pooling());
        OnnxFormatException e =
                assertThrows(OnnxFormatException.class, () -> BertEncoder.load(MiniLm.file(MiniLm.ONNX), wrong));
        assertTrue(e.getMessage().contains("intermediate.dense"), e.getMessage());
    }

    @Test
    void truncatedModelFileIsAClearError(@TempDir Path dir) throws IOException {
        Path cut = dir.resolve("cut.onnx");
        byte[] full = Files.readAllBytes(MiniLm.file(MiniLm.ONNX));
        Files.write(cut, Arrays.copyOf(full, full.length / 2));
        OnnxFormatException e = assertThrows(OnnxFormatException.class, () -> BertEncoder.load(cut));
        assertTrue(e.getMessage().startsWith(cut + ": ") && e.getMessage().contains("truncated"), e.getMessage());
    }

    @Test
    void foreignFileIsAClearError() {
        Path json = MiniLm.file(MiniLm.TOKENIZER);
        OnnxFormatException e = assertThrows(OnnxFormatException.class, () -> BertEncoder.load(json));
        assertTrue(e.getMessage().startsWith(json + ": "), e.getMessage());
    }

    @Test
    void onnxModelThatIsNotBertIsNamed(@TempDir Path dir) throws IOException {
        Path other = dir.resolve("matmul.onnx");
        Files.write(other, dev.aule.models.onnx.OnnxModels.matMulModel());
        OnnxFormatException e = assertThrows(OnnxFormatException.class, () -> BertEncoder.load(other));
        assertTrue(e.getMessage().contains("not a BERT-family encoder"), e.getMessage());
    }

    @Test
    void badTokenInputIsAClearError() {
        BertEncoder encoder = MiniLm.encoder();
        assertMessage("no sequences", () -> encoder.encode(List.of()));
        assertMessage("tokenIds[1]: empty", () -> encoder.encode(List.of(new int[] {101, 102}, new int[0])));
        assertMessage("more than the 512 positions", () -> encoder.encode(List.of(new int[513])));
        assertMessage("outside the vocabulary", () -> encoder.encode(List.of(new int[] {101, 30522, 102})));
        assertMessage("outside the vocabulary", () -> encoder.encode(List.of(new int[] {-1})));
        assertMessage(
                "tokenTypeIds[0]", () -> encoder.encode(List.of(new int[] {101, 102}), List.of(new int[] {0, 2})));
    }

    private static void assertMessage(String part, org.junit.jupiter.api.function.Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().contains(part), e.getMessage());
    }
}
