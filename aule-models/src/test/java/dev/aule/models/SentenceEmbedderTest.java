package dev.aule.models;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.Collections;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Text in, embeddings out: the model's tokenizer with its 128-token truncation and padding overridden. */
class SentenceEmbedderTest {
    private static SentenceEmbedder embedder;

    @BeforeAll
    static void load() {
        embedder = SentenceEmbedder.of(MiniLm.encoder(), MiniLm.file(MiniLm.TOKENIZER), 512);
    }

    @AfterAll
    static void close() {
        embedder.close();
    }

    @Test
    void tokenizesLikeBertWithoutPadding() {
        assertArrayEquals(new int[] {101, 7592, 2088, 1012, 102}, embedder.tokenIds("Hello world."));
    }

    @Test
    void textsOverTheFileSettingOf128TokensAreNotTruncated() {
        String text = String.join(" ", Collections.nCopies(60, "attention matters"));
        List<SentenceEmbedder.Embedding> e = embedder.embed(List.of(text));
        assertEquals(122, e.getFirst().tokens());
        assertFalse(e.getFirst().truncated());
    }

    @Test
    void overLongTextsAreTruncatedAndSaySo() {
        String text = String.join(" ", Collections.nCopies(400, "attention matters"));
        SentenceEmbedder.Embedding e = embedder.embed(List.of(text, "Short.")).getFirst();
        assertEquals(512, e.tokens());
        assertTrue(e.truncated());
        assertEquals(1.0, BertEncoderOrtTest.norm(e.vector()), 1e-6);
    }

    @Test
    void embeddingsEqualTheEncoderOnTheSameIds() {
        List<String> texts = MiniLm.sentences().subList(0, 8);
        List<SentenceEmbedder.Embedding> e = embedder.embed(texts);
        float[][] direct =
                MiniLm.encoder().embed(texts.stream().map(MiniLm::ids).toList());
        for (int i = 0; i < texts.size(); i++) {
            assertArrayEquals(direct[i], e.get(i).vector(), "text " + i);
        }
    }

    @Test
    void emptyTextIsAClearError() {
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> embedder.embed(List.of("fine", "  ")));
        assertTrue(e.getMessage().startsWith("texts[1]: empty"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> embedder.embed(List.of()));
        assertThrows(
                IllegalArgumentException.class,
                () -> SentenceEmbedder.of(MiniLm.encoder(), MiniLm.file(MiniLm.TOKENIZER), 513));
    }
}
