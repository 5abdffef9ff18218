package dev.aule.models;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/**
 * The encoder's pooled work buffers change no bits: a pass after passes of other sizes (larger workspaces reused with
 * their old contents, the padding rows of the attention's context among them) and passes on several threads at once
 * give what a fresh encoder gives.
 */
class EncoderWorkspaceTest {
    private final TestModel model = TestModel.of(SentenceModel.ALL_MINILM_L6_V2);

    @Test
    void reusedWorkspacesGiveTheBitsOfAFreshEncoder() {
        List<String> sentences = MiniLm.sentences();
        List<int[]> small = List.of(model.ids(sentences.get(1)), model.ids(sentences.get(2)));
        List<int[]> large = sentences.subList(3, 19).stream().map(model::ids).toList();
        float[] expected = BertEncoder.load(model.onnx()).encode(small).values();
        BertEncoder reused = BertEncoder.load(model.onnx());
        reused.encode(large);
        assertArrayEquals(expected, reused.encode(small).values(), "after a larger batch");
        reused.encode(List.of(model.ids(sentences.get(0))));
        assertArrayEquals(expected, reused.encode(small).values(), "after a single text");
    }

    @Test
    void concurrentPassesGiveTheirBitsAlone() throws Exception {
        List<String> sentences = MiniLm.sentences();
        BertEncoder encoder = BertEncoder.load(model.onnx());
        List<List<int[]>> inputs = new ArrayList<>();
        List<float[]> alone = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            List<int[]> batch = sentences.subList(4 * i, 4 * i + 1 + i).stream()
                    .map(model::ids)
                    .toList();
            inputs.add(batch);
            alone.add(encoder.encode(batch).values());
        }
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<float[]>> futures = new ArrayList<>();
            for (int round = 0; round < 3; round++) {
                for (List<int[]> batch : inputs) {
                    futures.add(pool.submit(() -> encoder.encode(batch).values()));
                }
            }
            for (int f = 0; f < futures.size(); f++) {
                assertArrayEquals(alone.get(f % inputs.size()), futures.get(f).get(), "input " + f % inputs.size());
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void denseProductsAloneAreTimedAndTheirArgumentsChecked() {
        BertEncoder encoder = BertEncoder.load(model.onnx());
        double gflops = encoder.denseProductsGflops(8, 0.02);
        org.junit.jupiter.api.Assertions.assertTrue(gflops > 0 && Double.isFinite(gflops), "GFLOP/s: " + gflops);
        IllegalArgumentException tokens = org.junit.jupiter.api.Assertions.assertThrows(
                IllegalArgumentException.class, () -> encoder.denseProductsGflops(3, 1));
        org.junit.jupiter.api.Assertions.assertEquals("tokens must be in [4, 65536], got 3", tokens.getMessage());
        IllegalArgumentException seconds = org.junit.jupiter.api.Assertions.assertThrows(
                IllegalArgumentException.class, () -> encoder.denseProductsGflops(8, Double.NaN));
        org.junit.jupiter.api.Assertions.assertEquals("seconds must be in [0.01, 600], got NaN", seconds.getMessage());
    }
}
