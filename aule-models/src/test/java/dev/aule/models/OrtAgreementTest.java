package dev.aule.models;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The encoder against ONNX Runtime on the same ONNX file, over 240 real English texts of 3 to about 500 tokens run as
 * one packed batch: every hidden state, every pooled embedding (the model's own pooling), and the batch against each
 * text alone. ONNX Runtime and the batch run once per model; the subclasses name the model.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
abstract class OrtAgreementTest {
    /** Max |ours - ort| over a sentence's hidden states, relative to its largest |ort|. */
    private static final double MAX_RELATIVE_ERROR = 1e-5;

    private static final double MIN_COSINE = 0.99999;

    private TestModel model;
    private List<String> sentences;
    private List<int[]> ids;
    private List<float[]> oracle;
    private HiddenStates batch;

    /** {@return the model under test} */
    abstract SentenceModel model();

    /**
     * Whether every text runs, or (to keep the module's test time small for the larger models) every text over 400
     * tokens, every second one over 128 and every eighth of the rest.
     */
    boolean everyText() {
        return true;
    }

    /** {@return how much closer a paraphrase is than an unrelated sentence, in cosine} */
    double paraphraseMargin() {
        return 0.2;
    }

    @BeforeAll
    void runOracle() throws Exception {
        model = TestModel.of(model());
        sentences = MiniLm.sentences();
        List<int[]> all = sentences.stream().map(model::ids).toList();
        ids = new ArrayList<>();
        for (int i = 0; i < all.size(); i++) {
            int n = all.get(i).length;
            if (everyText() || n > 400 || (n > 128 && i % 2 == 0) || i % 8 == 0) {
                ids.add(all.get(i));
            }
        }
        oracle = new ArrayList<>();
        try (OrtOracle ort = new OrtOracle(model.onnx())) {
            for (int[] s : ids) {
                oracle.add(ort.lastHiddenState(s));
            }
        }
        batch = model.encoder().encode(ids);
    }

    @Test
    void sentencesCoverShortAndLongTexts() {
        int min = ids.stream().mapToInt(a -> a.length).min().orElseThrow();
        int max = ids.stream().mapToInt(a -> a.length).max().orElseThrow();
        long over128 = ids.stream().filter(a -> a.length > 128).count();
        long over400 = ids.stream().filter(a -> a.length > 400).count();
        long over480 = ids.stream().filter(a -> a.length > 480).count();
        long truncated = sentences.stream()
                .filter(t -> model.tokenizer().encode(t).exceedMaxLength())
                .count();
        System.out.printf(
                "%s: %d of %d texts, %d to %d tokens, %d over 128, %d over 400, %d over 480%n",
                model().id(), ids.size(), sentences.size(), min, max, over128, over400, over480);
        assertTrue(sentences.size() >= 200, "sentences: " + sentences.size());
        assertTrue(
                min <= 5 && max <= 512 && over128 >= 20 && over400 >= 4 && over480 >= 2,
                "token counts from " + min + " to " + max + ", " + over128 + " over 128, " + over400 + " over 400, "
                        + over480 + " over 480");
        assertEquals(0, truncated, "texts over 512 tokens");
    }

    @Test
    void lastHiddenStatesMatchOnnxRuntime() {
        HiddenStates states = batch;
        double worst = 0;
        for (int s = 0; s < ids.size(); s++) {
            float[] ours = states.sequence(s);
            float[] ort = oracle.get(s);
            assertEquals(ort.length, ours.length, "sentence " + s);
            double err = 0;
            double scale = 0;
            for (int i = 0; i < ort.length; i++) {
                err = Math.max(err, Math.abs(ours[i] - ort[i]));
                scale = Math.max(scale, Math.abs(ort[i]));
            }
            double relative = err / scale;
            worst = Math.max(worst, relative);
            assertTrue(
                    relative <= MAX_RELATIVE_ERROR,
                    "sentence " + s + " (" + ids.get(s).length + " tokens): max error " + err + " of " + scale);
        }
        System.out.printf("%s: %d sentences, worst max relative error %.3g%n", model().id(), ids.size(), worst);
    }

    @Test
    void pooledEmbeddingsMatchOnnxRuntime() {
        assertEquals(model().pooling(), model.encoder().config().pooling());
        float[][] ours = BertEncoder.pool(batch, model().pooling());
        double worst = 1;
        for (int s = 0; s < ids.size(); s++) {
            float[] ort = BertEncoder.pool(
                    new HiddenStates(384, new int[] {0, ids.get(s).length}, oracle.get(s)), model().pooling())[0];
            double cosine = cosine(ours[s], ort);
            worst = Math.min(worst, cosine);
            assertTrue(cosine >= MIN_COSINE, "sentence " + s + ": cosine " + cosine);
            assertEquals(1.0, norm(ours[s]), 1e-6, "sentence " + s + ": not unit length");
        }
        System.out.printf("%s: %d sentences, worst pooled cosine 1 - %.3g%n", model().id(), ids.size(), 1 - worst);
    }

    @Test
    void packedBatchEqualsOneByOne() {
        BertEncoder encoder = model.encoder();
        for (int s = 0; s < ids.size(); s++) {
            float[] alone = encoder.encode(List.of(ids.get(s))).sequence(0);
            assertArrayEquals(alone, batch.sequence(s), "sentence " + s + " alone and in the batch");
        }
    }

    @Test
    void concurrentCallsGiveTheSameEmbeddings() throws Exception {
        BertEncoder encoder = model.encoder();
        List<int[]> some = ids.subList(0, 12);
        float[][] expected = encoder.embed(some);
        try (var pool = java.util.concurrent.Executors.newFixedThreadPool(4)) {
            List<java.util.concurrent.Future<float[][]>> results = new ArrayList<>();
            for (int i = 0; i < 4; i++) {
                results.add(pool.submit(() -> encoder.embed(some)));
            }
            for (var r : results) {
                float[][] got = r.get();
                for (int s = 0; s < expected.length; s++) {
                    assertArrayEquals(expected[s], got[s], "sentence " + s);
                }
            }
        }
    }

    @Test
    void similarSentencesAreCloserThanUnrelatedOnes() {
        float[][] e = model.encoder()
                .embed(List.of(
                        model.ids("The weather will be rainy tomorrow."),
                        model.ids("Tomorrow it is going to rain."),
                        model.ids("The compiler rejected the program.")));
        System.out.printf(
                "%s: paraphrase cosine %.4f, unrelated %.4f%n", model().id(), cosine(e[0], e[1]), cosine(e[0], e[2]));
        assertTrue(
                cosine(e[0], e[1]) > cosine(e[0], e[2]) + paraphraseMargin(),
                "similar " + cosine(e[0], e[1]) + " unrelated " + cosine(e[0], e[2]));
    }

    static double cosine(float[] a, float[] b) {
        double dot = 0;
        for (int i = 0; i < a.length; i++) {
            dot += (double) a[i] * b[i];
        }
        return dot / (norm(a) * norm(b));
    }

    static double norm(float[] a) {
        double s = 0;
        for (float v : a) {
            s += (double) v * v;
        }
        return Math.sqrt(s);
    }
}
