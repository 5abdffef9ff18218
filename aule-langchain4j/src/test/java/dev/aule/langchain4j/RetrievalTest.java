package dev.aule.langchain4j;

import dev.langchain4j.data.embedding.Embedding;
import dev.langchain4j.data.segment.TextSegment;
import dev.langchain4j.model.embedding.EmbeddingModel;
import dev.langchain4j.model.embedding.onnx.allminilml6v2.AllMiniLmL6V2EmbeddingModel;
import dev.langchain4j.store.embedding.EmbeddingMatch;
import dev.langchain4j.store.embedding.EmbeddingSearchRequest;
import dev.langchain4j.store.embedding.inmemory.InMemoryEmbeddingStore;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Retrieval through LangChain4j's InMemoryEmbeddingStore: the aule model finds the same top 5 of a corpus, in the
 * same order, as LangChain4j's own AllMiniLmL6V2EmbeddingModel, for every query.
 */
class RetrievalTest {
    private static final List<String> QUERIES = List.of(
            "What happened after the river flooded the town?",
            "How do insects tell each other where food is?",
            "space travel to another planet",
            "music performed live in a concert hall",
            "Which renewable energy does the school use?",
            "weather: heavy snow closed the roads",
            "finding a bug in software",
            "old buildings and their history",
            "What should I eat for breakfast?",
            "a dog and the people who deliver parcels");

    @Test
    void topFiveMatchLangChain4jsModel() throws IOException {
        List<TextSegment> corpus = corpus().stream().map(TextSegment::from).toList();
        EmbeddingModel theirs = new AllMiniLmL6V2EmbeddingModel();
        try (AuleAllMiniLmL6V2EmbeddingModel ours = new AuleAllMiniLmL6V2EmbeddingModel()) {
            InMemoryEmbeddingStore<TextSegment> ourStore = store(ours, corpus);
            InMemoryEmbeddingStore<TextSegment> theirStore = store(theirs, corpus);
            for (String query : QUERIES) {
                List<String> a = top5(ourStore, ours.embed(query).content());
                List<String> b = top5(theirStore, theirs.embed(query).content());
                assertEquals(5, a.size());
                assertEquals(b, a, "top 5 of '" + query + "'");
            }
        }
    }

    private static InMemoryEmbeddingStore<TextSegment> store(EmbeddingModel model, List<TextSegment> corpus) {
        InMemoryEmbeddingStore<TextSegment> store = new InMemoryEmbeddingStore<>();
        List<Embedding> embeddings = model.embedAll(corpus).content();
        assertEquals(corpus.size(), embeddings.size());
        store.addAll(embeddings, corpus);
        return store;
    }

    private static List<String> top5(InMemoryEmbeddingStore<TextSegment> store, Embedding query) {
        List<EmbeddingMatch<TextSegment>> matches = store.search(EmbeddingSearchRequest.builder()
                        .queryEmbedding(query)
                        .maxResults(5)
                        .build())
                .matches();
        return matches.stream().map(m -> m.embedded().text()).toList();
    }

    private static List<String> corpus() throws IOException {
        try (InputStream in = RetrievalTest.class.getResourceAsStream("corpus.txt")) {
            List<String> lines = new String(in.readAllBytes(), StandardCharsets.UTF_8)
                    .lines()
                    .filter(l -> !l.isBlank() && !l.startsWith("#"))
                    .toList();
            assertTrue(lines.size() >= 50, "corpus: " + lines.size());
            return lines;
        }
    }
}
