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
    void textsThatFitEmbedInPartsAsInOne() {
        List<String> texts = MiniLm.sentences().subList(0, 8);
        List<SentenceEmbedder.Embedding> one = embedder.embed(texts);
        List<SentenceEmbedder.Embedding> parts = embedder.embedInParts(texts);
        for (int i = 0; i < texts.size(); i++) {
            assertArrayEquals(one.get(i).vector(), parts.get(i).vector(), "text " + i);
            assertEquals(one.get(i).tokens(), parts.get(i).tokens());
        }
    }

    @Test
    void longerTextsAverageTheirPartsByLengthWithoutSplittingAWord() {
        // 509 "attention" tokens, then "token" "##ization": the first part of 510 would end inside the word, so it
        // ends before it, and the word starts the second part.
        String first = String.join(" ", Collections.nCopies(509, "attention"));
        String second = "tokenization is the first step of every model.";
        int[] a = embedder.tokenIds(first);
        int[] b = embedder.tokenIds(second);
        assertEquals(511, a.length);
        SentenceEmbedder.Embedding e =
                embedder.embedInParts(List.of(first + " " + second)).getFirst();
        assertEquals(a.length + b.length - 2, e.tokens());
        assertFalse(e.truncated());
        HiddenStates states = MiniLm.encoder().encode(List.of(a, b));
        double[] want = new double[states.hidden()];
        for (int p = 0; p < 2; p++) {
            int weight = states.length(p) - 2; // tokens without [CLS] and [SEP]
            for (int t = states.offsets()[p]; t < states.offsets()[p + 1]; t++) {
                for (int x = 0; x < want.length; x++) {
                    want[x] += (double) weight / states.length(p) * states.values()[t * want.length + x];
                }
            }
        }
        double norm = 0;
        for (double w : want) {
            norm += w * w;
        }
        for (int x = 0; x < want.length; x++) {
            assertEquals(want[x] / Math.sqrt(norm), e.vector()[x], 1e-6, "dimension " + x);
        }
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
