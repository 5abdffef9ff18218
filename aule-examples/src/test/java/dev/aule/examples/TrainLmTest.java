package dev.aule.examples;

import dev.aule.AttentionOptions;
import org.junit.jupiter.api.Test;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TrainLmTest {
    private static final AttentionOptions CAUSAL =
            AttentionOptions.builder().causal(true).build();

    /** A short run on the bundled text: the validation loss (held-out text) falls well below its start. */
    @Test
    void validationLossFallsInAShortRun() {
        TrainLm.Config cfg = new TrainLm.Config(40, 8, 64, 64, 4, 2, 256, 3e-3f, 8, 0.01f, 0f, 0f, 20, 2, 7);
        StringWriter printed = new StringWriter();
        TrainLm.History history = TrainLm.run(cfg, new PrintWriter(printed));
        assertEquals(
                List.of(0, 20, 40),
                history.points().stream().map(TrainLm.Point::step).toList());
        for (TrainLm.Point p : history.points()) {
            assertTrue(Double.isFinite(p.validationLoss()), p.toString());
        }
        double first = history.firstValidationLoss();
        double last = history.lastValidationLoss();
        assertTrue(first > 4, "an untrained model is near chance over 80 characters (ln 80 = 4.38): " + first);
        assertTrue(last < first - 1.0, "validation loss " + first + " -> " + last + "\n" + printed);
        assertTrue(
                history.sample().startsWith("This License") && history.sample().length() == 12 + 240);
        assertTrue(printed.toString().contains("step    40  train"), printed.toString());
    }

    /** Attention dropout goes through the library's option: it changes the run, and the model still learns. */
    @Test
    void attentionDropoutTakesEffectAndTheModelStillLearns() {
        TrainLm.Config plain = new TrainLm.Config(20, 8, 64, 64, 4, 2, 256, 3e-3f, 4, 0.01f, 0f, 0f, 20, 2, 7);
        TrainLm.Config dropped = new TrainLm.Config(20, 8, 64, 64, 4, 2, 256, 3e-3f, 4, 0.01f, 0f, 0.1f, 20, 2, 7);
        TrainLm.History a = TrainLm.run(plain, new PrintWriter(new StringWriter()));
        TrainLm.History b = TrainLm.run(dropped, new PrintWriter(new StringWriter()));
        assertEquals(a.firstValidationLoss(), b.firstValidationLoss(), "the same model before training");
        assertTrue(a.lastValidationLoss() != b.lastValidationLoss(), "dropout changed the training");
        assertTrue(
                b.lastValidationLoss() < b.firstValidationLoss() - 0.5,
                b.firstValidationLoss() + " -> " + b.lastValidationLoss());
    }

    /** The loss of the tiny model at its parameters moved by {@code eps} along {@code direction}. */
    private static double lossAlong(
            TinyTransformer lm, Param p, float[] direction, double eps, int[] inputs, int[] targets, int batch) {
        float[] saved = p.value.clone();
        for (int i = 0; i < saved.length; i++) {
            p.value[i] = (float) (saved[i] + eps * direction[i]);
        }
        double loss = lm.forward(inputs, targets, batch, inputs.length / batch, CAUSAL, 0f, null).loss;
        System.arraycopy(saved, 0, p.value, 0, saved.length);
        return loss;
    }

    /**
     * Every parameter's hand-written gradient (through RMSNorm, GELU, RoPE's backward and the library's
     * attention backward) against a central finite difference of the loss along a random direction.
     */
    @Test
    void handWrittenBackwardMatchesFiniteDifferences() {
        TinyTransformer lm = new TinyTransformer(new TinyTransformer.Shape(7, 8, 2, 2, 12, 6), 3);
        SplittableRandom rnd = new SplittableRandom(4);
        int batch = 2;
        int[] inputs = new int[batch * 6];
        int[] targets = new int[batch * 6];
        for (int i = 0; i < inputs.length; i++) {
            inputs[i] = rnd.nextInt(7);
            targets[i] = rnd.nextInt(7);
        }
        // Move every parameter off its initial value (norm gains start at exactly 1).
        for (Param p : lm.params()) {
            for (int i = 0; i < p.value.length; i++) {
                p.value[i] += (float) (0.1 * rnd.nextGaussian());
            }
        }
        TinyTransformer.Pass pass = lm.forward(inputs, targets, batch, 6, CAUSAL, 0f, null);
        lm.backward(pass, CAUSAL);
        assertEquals(1 + 2 * 8 + 2, lm.params().size(), "embedding, 8 per block, final norm, unembedding");
        for (Param p : lm.params()) {
            float[] direction = new float[p.value.length];
            double analytic = 0;
            for (int i = 0; i < direction.length; i++) {
                direction[i] = (float) rnd.nextGaussian();
                analytic += (double) p.grad[i] * direction[i];
            }
            double eps = 1e-2;
            double numeric = (lossAlong(lm, p, direction, eps, inputs, targets, batch)
                            - lossAlong(lm, p, direction, -eps, inputs, targets, batch))
                    / (2 * eps);
            assertEquals(numeric, analytic, 2e-4 + 2e-2 * Math.abs(numeric), p.name);
            assertTrue(Math.abs(analytic) > 1e-4, p.name + ": a gradient that is zero would pass trivially");
        }
    }

    @Test
    void corpusHoldsOutTheTailOfEachDocument() {
        CharCorpus c = CharCorpus.of(List.of("abcdefghij", "0123456789"), 0.2);
        assertEquals("abcdefgh012345678".length() - 1, c.train().length);
        assertEquals("ij9".length() + 1, c.validation().length);
        assertEquals(
                "abcdefgh01234567", c.decode(c.train(), 0, 16).substring(0, 16).replace("8", ""));
        assertEquals("ij89", c.decode(c.validation(), 0, 4));
        CharCorpus bundled = CharCorpus.bundled(0.1);
        assertTrue(bundled.vocab() > 60 && bundled.vocab() < 100, bundled.vocabulary());
        assertTrue(bundled.validation().length > 5000, "validation characters " + bundled.validation().length);
    }

    @Test
    void badSettingsAreRejected() {
        TrainLm.Config d = TrainLm.Config.defaults();
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class,
                () -> new TrainLm.Config(1, 1, 8, 8, 2, 1, 8, 1e-3f, 0, 0f, 0f, 1f, 1, 1, 1));
        assertTrue(e.getMessage().startsWith("attentionDropout"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> d.withResidualDropout(1f));
        assertTrue(e.getMessage().startsWith("residualDropout"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> d.withSteps(0, 1));
        assertTrue(e.getMessage().startsWith("steps"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new TinyTransformer.Shape(10, 12, 4, 1, 8, 8));
        assertTrue(e.getMessage().startsWith("model"), e.getMessage());
    }
}
