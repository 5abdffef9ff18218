package dev.aule.models;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;

/**
 * The test model, all-MiniLM-L6-v2 from the LangChain4j jar on the test class path: its ONNX file and tokenizer.json
 * (through {@link TestModel}), and the test sentences.
 */
final class MiniLm {
    static final String ONNX = "all-minilm-l6-v2.onnx";
    static final String TOKENIZER = "all-minilm-l6-v2-tokenizer.json";

    private MiniLm() {}

    static Path file(String resource) {
        return TestModel.file(resource);
    }

    static BertEncoder encoder() {
        return TestModel.of(SentenceModel.ALL_MINILM_L6_V2).encoder();
    }

    /** The model's tokenizer with its truncation and padding to 128 overridden: up to 512 tokens, no padding. */
    static HuggingFaceTokenizer tokenizer() {
        return TestModel.of(SentenceModel.ALL_MINILM_L6_V2).tokenizer();
    }

    static int[] ids(String text) {
        return TestModel.of(SentenceModel.ALL_MINILM_L6_V2).ids(text);
    }

    static List<String> sentences() {
        try (InputStream in = MiniLm.class.getResourceAsStream("sentences.txt")) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8)
                    .lines()
                    .filter(l -> !l.isBlank() && !l.startsWith("#"))
                    .toList();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
