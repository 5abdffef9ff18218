package dev.aule.models;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * The test model, all-MiniLM-L6-v2 from the LangChain4j jar on the test class path: its ONNX file and tokenizer.json
 * copied out once per build into target/minilm, one encoder loaded once per JVM, and the test sentences.
 */
final class MiniLm {
    static final String ONNX = "all-minilm-l6-v2.onnx";
    static final String TOKENIZER = "all-minilm-l6-v2-tokenizer.json";

    private static BertEncoder encoder;
    private static HuggingFaceTokenizer tokenizer;

    private MiniLm() {}

    static synchronized Path file(String resource) {
        Path dir = Path.of("target", "minilm");
        Path target = dir.resolve(resource);
        try (InputStream in = Objects.requireNonNull(
                MiniLm.class.getClassLoader().getResourceAsStream(resource), resource + " on the test class path")) {
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

    static synchronized BertEncoder encoder() {
        if (encoder == null) {
            encoder = BertEncoder.load(file(ONNX));
        }
        return encoder;
    }

    /** The model's tokenizer with its truncation and padding to 128 overridden: up to 512 tokens, no padding. */
    static synchronized HuggingFaceTokenizer tokenizer() {
        if (tokenizer == null) {
            try {
                tokenizer = HuggingFaceTokenizer.builder()
                        .optTokenizerPath(file(TOKENIZER))
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

    static int[] ids(String text) {
        return Arrays.stream(tokenizer().encode(text).getIds())
                .mapToInt(x -> (int) x)
                .toArray();
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
