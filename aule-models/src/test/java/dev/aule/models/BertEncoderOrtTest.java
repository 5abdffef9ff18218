package dev.aule.models;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The encoder against ONNX Runtime on the same all-MiniLM-L6-v2 file, over real sentences of 3 to about 150 tokens
 * run as one packed batch: every hidden state, every pooled embedding, and the batch against each sentence alone.
 */
class BertEncoderOrtTest {
    /** Max |ours - ort| over a sentence's hidden states, relative to its largest |ort|. */
    private static final double MAX_RELATIVE_ERROR = 1e-5;

    private static final double MIN_COSINE = 0.99999;

    private static List<String> sentences;
    private static List<int[]> ids;
    private static List<float[]> oracle;

    @BeforeAll
    static void runOracle() throws Exception {
        sentences = MiniLm.sentences();
        ids = sentences.stream().map(MiniLm::ids).toList();
        oracle = new ArrayList<>();
        try (OrtOracle ort = new OrtOracle(MiniLm.file(MiniLm.ONNX))) {
            for (int[] s : ids) {
                oracle.add(ort.lastHiddenState(s));
            }
        }
    }

    @Test
    void sentencesCoverShortAndLongTexts() {
        int min = ids.stream().mapToInt(a -> a.length).min().orElseThrow();
        int max = ids.stream().mapToInt(a -> a.length).max().orElseThrow();
        assertTrue(sentences.size() >= 40, "sentences: " + sentences.size());
        assertTrue(min <= 5 && max > 128, "token counts from " + min + " to " + max);
    }

    @Test
    void lastHiddenStatesMatchOnnxRuntime() {
        HiddenStates states = MiniLm.encoder().encode(ids);
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
        System.out.printf("BertEncoderOrtTest: %d sentences, worst max relative error %.3g%n", ids.size(), worst);
    }

    @Test
    void pooledEmbeddingsMatchOnnxRuntime() {
        float[][] ours = MiniLm.encoder().embed(ids);
        double worst = 1;
        for (int s = 0; s < ids.size(); s++) {
            float[] ort = BertEncoder.pool(
                    new HiddenStates(384, new int[] {0, ids.get(s).length}, oracle.get(s)), BertConfig.Pooling.MEAN)[0];
            double cosine = cosine(ours[s], ort);
            worst = Math.min(worst, cosine);
            assertTrue(cosine >= MIN_COSINE, "sentence " + s + ": cosine " + cosine);
            assertEquals(1.0, norm(ours[s]), 1e-6, "sentence " + s + ": not unit length");
        }
        System.out.printf("BertEncoderOrtTest: %d sentences, worst pooled cosine 1 - %.3g%n", ids.size(), 1 - worst);
    }

    @Test
    void packedBatchEqualsOneByOne() {
        BertEncoder encoder = MiniLm.encoder();
        HiddenStates batch = encoder.encode(ids);
        for (int s = 0; s < ids.size(); s++) {
            float[] alone = encoder.encode(List.of(ids.get(s))).sequence(0);
            assertArrayEquals(alone, batch.sequence(s), "sentence " + s + " alone and in the batch");
        }
    }

    @Test
    void concurrentCallsGiveTheSameEmbeddings() throws Exception {
        BertEncoder encoder = MiniLm.encoder();
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
        float[][] e = MiniLm.encoder()
                .embed(List.of(
                        MiniLm.ids("The weather will be rainy tomorrow."),
                        MiniLm.ids("Tomorrow it is going to rain."),
                        MiniLm.ids("The compiler rejected the program.")));
        assertTrue(
                cosine(e[0], e[1]) > cosine(e[0], e[2]) + 0.2,
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
