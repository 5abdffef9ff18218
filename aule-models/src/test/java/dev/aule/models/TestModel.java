package dev.aule.models;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.Map;
import java.util.Objects;

/**
 * A model from its LangChain4j jar on the test class path: its ONNX file and tokenizer.json copied out once per build
 * into target/models, one encoder (with the model's pooling) and one tokenizer per JVM.
 */
final class TestModel {
    private static final Map<SentenceModel, TestModel> LOADED = new EnumMap<>(SentenceModel.class);

    final SentenceModel model;
    private BertEncoder encoder;
    private HuggingFaceTokenizer tokenizer;

    private TestModel(SentenceModel model) {
        this.model = model;
    }

    static synchronized TestModel of(SentenceModel model) {
        return LOADED.computeIfAbsent(model, TestModel::new);
    }

    static synchronized Path file(String resource) {
        Path dir = Path.of("target", "models");
        Path target = dir.resolve(resource);
        try (InputStream in = Objects.requireNonNull(
                TestModel.class.getClassLoader().getResourceAsStream(resource), resource + " on the test class path")) {
            if (!Files.exists(target)) {
                Files.createDirectories(dir);
                Path tmp = Files.createTempFile(dir, resource, ".part");
                Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
                Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return target;
    }

    Path onnx() {
        return file(model.onnxResource());
    }

    Path tokenizerJson() {
        return file(model.tokenizerResource());
    }

    synchronized BertEncoder encoder() {
        if (encoder == null) {
            encoder = BertEncoder.load(onnx(), model.pooling());
        }
        return encoder;
    }

    /** The model's tokenizer with the file's truncation and padding overridden: up to 512 tokens, no padding. */
    synchronized HuggingFaceTokenizer tokenizer() {
        if (tokenizer == null) {
            try {
                tokenizer = HuggingFaceTokenizer.builder()
                        .optTokenizerPath(tokenizerJson())
                        .optTruncation(true)
                        .optMaxLength(512)
                        .optPadding(false)
                        .build();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return tokenizer;
    }

    int[] ids(String text) {
        return Arrays.stream(tokenizer().encode(text).getIds())
                .mapToInt(x -> (int) x)
                .toArray();
    }
}
