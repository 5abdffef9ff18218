package dev.aule.examples;

import dev.aule.AttentionOptions;
import dev.aule.Backends;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Trains a small character-level causal transformer language model ({@link TinyTransformer}: RoPE
 * through {@link dev.aule.serving.Rope}, attention through the library's forward and backward, the
 * rest in plain Java) on real English text bundled with the examples (three licence documents, see
 * {@code corpus/README.md}), holding out the tail of each document for validation. Prints the
 * training and validation loss at each evaluation and a sample of generated text at the end.
 */
public final class TrainLm {
    /**
     * The run's settings.
     *
     * @param steps AdamW steps, at least 1
     * @param batch sequences per step
     * @param seq tokens per sequence (the context)
     * @param model the residual width
     * @param heads attention heads
     * @param layers transformer blocks
     * @param hidden the MLP's inner width
     * @param learningRate the peak learning rate (linear warm-up over {@code warmup} steps, then cosine to a tenth)
     * @param warmup warm-up steps
     * @param weightDecay AdamW's decoupled weight decay on the matrices
     * @param residualDropout dropout on each block's two residual branches, in {@code [0, 1)}
     * @param attentionDropout dropout on the attention probabilities, in [0, 1)
     * @param evalEvery steps between two evaluations of the validation loss
     * @param evalBatches validation batches per evaluation (the same windows every time)
     * @param seed seeds the initialisation, the batches and the dropout masks
     */
    public record Config(
            int steps,
            int batch,
            int seq,
            int model,
            int heads,
            int layers,
            int hidden,
            float learningRate,
            int warmup,
            float weightDecay,
            float residualDropout,
            float attentionDropout,
            int evalEvery,
            int evalBatches,
            long seed) {
        /** Checks the settings the model's shape does not. */
        public Config {
            atLeastOne("steps", steps);
            atLeastOne("batch", batch);
            atLeastOne("evalEvery", evalEvery);
            atLeastOne("evalBatches", evalBatches);
            if (warmup < 0) {
                throw new IllegalArgumentException("warmup: must be >= 0, got " + warmup);
            }
            if (!(learningRate > 0) || Float.isInfinite(learningRate)) {
                throw new IllegalArgumentException("learningRate: must be finite and > 0, got " + learningRate);
            }
            if (!(weightDecay >= 0) || Float.isInfinite(weightDecay)) {
                throw new IllegalArgumentException("weightDecay: must be finite and >= 0, got " + weightDecay);
            }
            if (!(residualDropout >= 0 && residualDropout < 1)) {
                throw new IllegalArgumentException("residualDropout: must be in [0, 1), got " + residualDropout);
            }
            if (!(attentionDropout >= 0 && attentionDropout < 1)) {
                throw new IllegalArgumentException("attentionDropout: must be in [0, 1), got " + attentionDropout);
            }
        }

        private static void atLeastOne(String name, int value) {
            if (value < 1) {
                throw new IllegalArgumentException(name + ": must be >= 1, got " + value);
            }
        }

        /** The default run: 2 blocks, model 64, 4 heads, context 64, batch 16, 600 steps. */
        public static Config defaults() {
            return new Config(600, 16, 64, 64, 4, 2, 256, 3e-3f, 30, 0.01f, 0f, 0f, 50, 8, 1);
        }

        /** {@return these settings with {@code steps} steps and an evaluation every {@code evalEvery}} */
        public Config withSteps(int steps, int evalEvery) {
            return new Config(
                    steps,
                    batch,
                    seq,
                    model,
                    heads,
                    layers,
                    hidden,
                    learningRate,
                    Math.min(warmup, steps / 5),
                    weightDecay,
                    residualDropout,
                    attentionDropout,
                    evalEvery,
                    evalBatches,
                    seed);
        }

        /** {@return these settings with residual dropout {@code p}} */
        public Config withResidualDropout(float p) {
            return new Config(
                    steps,
                    batch,
                    seq,
                    model,
                    heads,
                    layers,
                    hidden,
                    learningRate,
                    warmup,
                    weightDecay,
                    p,
                    attentionDropout,
                    evalEvery,
                    evalBatches,
                    seed);
        }
    }

    /**
     * One evaluation.
     *
     * @param step the steps taken before it (0: the initial model)
     * @param trainLoss the mean training loss of the steps since the last evaluation (NaN at step 0)
     * @param validationLoss the mean loss on the validation windows
     * @param seconds since the run started
     */
    public record Point(int step, double trainLoss, double validationLoss, double seconds) {}

    /**
     * What a run printed and measured.
     *
     * @param points the evaluations, in order
     * @param sample text the trained model generated
     */
    public record History(List<Point> points, String sample) {
        /** {@return the validation loss of the first evaluation} */
        public double firstValidationLoss() {
            return points.getFirst().validationLoss();
        }

        /** {@return the validation loss of the last evaluation} */
        public double lastValidationLoss() {
            return points.getLast().validationLoss();
        }
    }

    private final Config cfg;
    private final CharCorpus corpus;
    private final TinyTransformer lm;
    private final SplittableRandom rnd;
    private final int[][] validationInputs;
    private final int[][] validationTargets;
    private int step;

    /** A model for {@code cfg} on the bundled text. */
    public TrainLm(Config cfg) {
        this(cfg, CharCorpus.bundled(0.1));
    }

    TrainLm(Config cfg, CharCorpus corpus) {
        this.cfg = cfg;
        this.corpus = corpus;
        this.lm = new TinyTransformer(
                new TinyTransformer.Shape(
                        corpus.vocab(), cfg.model(), cfg.heads(), cfg.layers(), cfg.hidden(), cfg.seq()),
                cfg.seed());
        this.rnd = new SplittableRandom(cfg.seed() + 1);
        SplittableRandom windows = new SplittableRandom(cfg.seed() + 2); // the same validation windows each time
        validationInputs = new int[cfg.evalBatches()][cfg.batch() * cfg.seq()];
        validationTargets = new int[cfg.evalBatches()][cfg.batch() * cfg.seq()];
        for (int i = 0; i < cfg.evalBatches(); i++) {
            CharCorpus.sample(
                    corpus.validation(), cfg.batch(), cfg.seq(), windows, validationInputs[i], validationTargets[i]);
        }
    }

    public static void main(String[] args) {
        Config cfg = Config.defaults();
        run(
                args.length > 0 ? cfg.withSteps(Integer.parseInt(args[0]), cfg.evalEvery()) : cfg,
                new PrintWriter(System.out, true));
    }

    /** Trains with {@code cfg}, printing each evaluation and a generated sample to {@code out}. */
    public static History run(Config cfg, PrintWriter out) {
        TrainLm demo = new TrainLm(cfg);
        out.printf(
                "TrainLm: character-level causal transformer, %d blocks, model %d, %d heads, MLP %d, RoPE, context %d; "
                        + "%,d parameters; vocab %d; %,d training / %,d validation characters; batch %d, AdamW lr %.0e; "
                        + "attention on backend '%s'%n",
                cfg.layers(),
                cfg.model(),
                cfg.heads(),
                cfg.hidden(),
                cfg.seq(),
                demo.lm.size(),
                demo.corpus.vocab(),
                demo.corpus.train().length,
                demo.corpus.validation().length,
                cfg.batch(),
                cfg.learningRate(),
                Backends.selected().name());
        out.flush();
        long start = System.nanoTime();
        List<Point> points = new ArrayList<>();
        points.add(new Point(0, Double.NaN, demo.validationLoss(), (System.nanoTime() - start) / 1e9));
        out.printf(
                "step %5d  val %.4f  (%.1f s)%n",
                0, points.getFirst().validationLoss(), points.getFirst().seconds());
        out.flush();
        double running = 0;
        int since = 0;
        for (int s = 1; s <= cfg.steps(); s++) {
            running += demo.trainStep();
            since++;
            if (s % cfg.evalEvery() == 0 || s == cfg.steps()) {
                Point p = new Point(s, running / since, demo.validationLoss(), (System.nanoTime() - start) / 1e9);
                points.add(p);
                out.printf(
                        "step %5d  train %.4f  val %.4f  (%.1f s)%n",
                        s, p.trainLoss(), p.validationLoss(), p.seconds());
                out.flush();
                running = 0;
                since = 0;
            }
        }
        String sample = demo.generate("This License", 240, 0.7, new SplittableRandom(cfg.seed() + 3));
        out.println("sample (temperature 0.7): " + sample.replace("\n", "\n  "));
        out.flush();
        return new History(List.copyOf(points), sample);
    }

    /**
     * Attention's options for training step {@code s}: causal, with attention dropout under a seed of its own per
     * step (a fresh mask each step, which the step's backward redraws from the same options). Evaluation runs
     * without dropout.
     */
    private AttentionOptions attentionOptions(int s) {
        return AttentionOptions.builder()
                .causal(true)
                .dropout(cfg.attentionDropout(), cfg.seed() * 1_000_003 + s)
                .build();
    }

    /** One AdamW step on a fresh batch of training windows; returns the batch's loss before the step. */
    public double trainStep() {
        int[] inputs = new int[cfg.batch() * cfg.seq()];
        int[] targets = new int[inputs.length];
        CharCorpus.sample(corpus.train(), cfg.batch(), cfg.seq(), rnd, inputs, targets);
        AttentionOptions options = attentionOptions(step + 1);
        TinyTransformer.Pass pass =
                lm.forward(inputs, targets, cfg.batch(), cfg.seq(), options, cfg.residualDropout(), rnd);
        lm.backward(pass, options);
        step++;
        float lr = learningRate(step);
        for (Param p : lm.params()) {
            p.adamW(lr, cfg.weightDecay(), step);
        }
        return pass.loss;
    }

    /** Linear warm-up, then cosine decay to a tenth of the peak at the last step. */
    private float learningRate(int s) {
        if (s <= cfg.warmup()) {
            return cfg.learningRate() * s / cfg.warmup();
        }
        double progress = (double) (s - cfg.warmup()) / Math.max(1, cfg.steps() - cfg.warmup());
        return (float) (cfg.learningRate() * (0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, progress)))));
    }

    /** The mean loss over the fixed validation windows, without dropout. */
    public double validationLoss() {
        AttentionOptions options = AttentionOptions.builder().causal(true).build();
        double sum = 0;
        for (int i = 0; i < validationInputs.length; i++) {
            sum += lm.forward(validationInputs[i], validationTargets[i], cfg.batch(), cfg.seq(), options, 0f, null)
                    .loss;
        }
        return sum / validationInputs.length;
    }

    /** {@code count} characters sampled after {@code prompt} at {@code temperature}, the context the last {@code seq}. */
    String generate(String prompt, int count, double temperature, SplittableRandom sampler) {
        StringBuilder text = new StringBuilder(prompt);
        AttentionOptions options = AttentionOptions.builder().causal(true).build();
        for (int n = 0; n < count; n++) {
            int len = Math.min(text.length(), cfg.seq());
            int[] context = new int[len];
            for (int i = 0; i < len; i++) {
                context[i] = Math.max(0, corpus.vocabulary().indexOf(text.charAt(text.length() - len + i)));
            }
            float[] p = lm.forward(context, null, 1, len, options, 0f, null).probabilities;
            int vocab = corpus.vocab();
            double[] weights = new double[vocab];
            double total = 0;
            for (int c = 0; c < vocab; c++) {
                weights[c] = Math.pow(p[(len - 1) * vocab + c], 1 / temperature);
                total += weights[c];
            }
            double pick = sampler.nextDouble() * total;
            int c = 0;
            while (c < vocab - 1 && (pick -= weights[c]) > 0) {
                c++;
            }
            text.append(corpus.vocabulary().charAt(c));
        }
        return text.toString();
    }

    /** The model, for tests. */
    TinyTransformer model() {
        return lm;
    }
}
