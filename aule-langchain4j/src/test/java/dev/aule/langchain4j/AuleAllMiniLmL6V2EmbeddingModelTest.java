package dev.aule.langchain4j;

import dev.langchain4j.data.embedding.Embedding;
import dev.langchain4j.data.segment.TextSegment;
import dev.langchain4j.model.embedding.EmbeddingModel;
import dev.langchain4j.model.embedding.onnx.allminilml6v2.AllMiniLmL6V2EmbeddingModel;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The aule model against LangChain4j's own AllMiniLmL6V2EmbeddingModel (ONNX Runtime) on the same texts. */
class AuleAllMiniLmL6V2EmbeddingModelTest {
    private static final List<String> TEXTS = List.of(
            "Hello world.",
            "The weather will be rainy tomorrow.",
            "Exact attention gives the same answer as the textbook formula, only faster.",
            "She opened the letter slowly, read it twice, and then put it back in the drawer without saying a word.",
            "Software that others depend on deserves care: clear error messages that say what went wrong and how to"
                    + " fix it, documentation that matches the code, tests that exercise the edges as well as the"
                    + " middle, and releases that do not break working programs without warning.");

    private static AuleAllMiniLmL6V2EmbeddingModel aule;

    @BeforeAll
    static void load() {
        aule = new AuleAllMiniLmL6V2EmbeddingModel();
    }

    @AfterAll
    static void close() {
        aule.close();
    }

    @Test
    void embeddingsMatchLangChain4jsModel() {
        EmbeddingModel reference = new AllMiniLmL6V2EmbeddingModel();
        List<TextSegment> segments = TEXTS.stream().map(TextSegment::from).toList();
        List<Embedding> ours = aule.embedAll(segments).content();
        List<Embedding> theirs = reference.embedAll(segments).content();
        assertEquals(theirs.size(), ours.size());
        for (int i = 0; i < TEXTS.size(); i++) {
            double cosine = cosine(ours.get(i).vector(), theirs.get(i).vector());
            assertTrue(cosine >= 0.99999, "text " + i + ": cosine " + cosine);
        }
        assertEquals(reference.dimension(), aule.dimension());
    }

    @Test
    void textsLongerThanTheModelAreEmbeddedWholeNotCut() {
        String all = String.join(" ", TEXTS);
        String longText = String.join(" ", java.util.Collections.nCopies(40, all));
        var whole = aule.embedAll(List.of(TextSegment.from(longText), TextSegment.from("Short.")));
        assertTrue(whole.tokenUsage().inputTokenCount() > 3 * 512, "every token counted");
        // Its start alone (what a model cutting at 512 tokens would embed) is another embedding.
        String start = longText.substring(0, longText.length() / 10);
        double cosine = cosine(
                whole.content().getFirst().vector(), aule.embed(start).content().vector());
        assertTrue(cosine < 0.9999, "the whole text, not its start: cosine " + cosine);
    }

    @Test
    void singleTextAndTokenUsage() {
        var response = aule.embed("Attention is all you need.");
        assertEquals(384, response.content().dimension());
        assertEquals(8, response.tokenUsage().inputTokenCount());
        assertEquals(0, aule.embedAll(List.of()).content().size());
    }

    private static double cosine(float[] a, float[] b) {
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < a.length; i++) {
            dot += (double) a[i] * b[i];
            na += (double) a[i] * a[i];
            nb += (double) b[i] * b[i];
        }
        return dot / Math.sqrt(na * nb);
    }
}
