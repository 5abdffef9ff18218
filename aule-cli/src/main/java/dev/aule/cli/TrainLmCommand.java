package dev.aule.cli;

import dev.aule.examples.TrainLm;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.nio.file.Path;

/** {@code aule train-lm}: a small character-level transformer language model trained on real English text. */
@Command(
        name = "train-lm",
        description = "Train a small causal transformer language model (character level, 2 blocks, RoPE, the "
                + "library's attention forward and backward, plain-Java AdamW) on bundled English text; prints the "
                + "training and validation loss and a generated sample, and can write the loss curve as a PNG.")
final class TrainLmCommand extends AuleCommand {
    @Option(names = "--steps", defaultValue = "600", description = "AdamW steps (default: ${DEFAULT-VALUE}).")
    private int steps;

    @Option(
            names = "--eval-every",
            defaultValue = "50",
            description = "Steps between validation evaluations (default: ${DEFAULT-VALUE}).")
    private int evalEvery;

    @Option(
            names = "--residual-dropout",
            defaultValue = "0",
            description = "Dropout on each block's residual branches, in [0, 1) (default: ${DEFAULT-VALUE}).")
    private float residualDropout;

    @Option(
            names = "--dropout",
            defaultValue = "0",
            description = "Dropout on the attention probabilities, in [0, 1), through the library's dropout option"
                    + " (default: ${DEFAULT-VALUE}).")
    private float dropout;

    @Option(names = "--seed", defaultValue = "1", description = "Seed of the run (default: ${DEFAULT-VALUE}).")
    private long seed;

    @Option(names = "--chart", paramLabel = "FILE", description = "Write the loss curve to FILE (PNG).")
    private Path chart;

    @Override
    public Integer call() {
        TrainLm.Config d = TrainLm.Config.defaults();
        TrainLm.Config cfg;
        try {
            cfg = new TrainLm.Config(
                    steps,
                    d.batch(),
                    d.seq(),
                    d.model(),
                    d.heads(),
                    d.layers(),
                    d.hidden(),
                    d.learningRate(),
                    Math.min(d.warmup(), steps / 5),
                    d.weightDecay(),
                    residualDropout,
                    dropout,
                    evalEvery,
                    d.evalBatches(),
                    seed);
        } catch (IllegalArgumentException e) {
            throw usageError(flag(e.getMessage()));
        }
        PrintWriter out = out();
        TrainLm.History history = TrainLm.run(cfg, out);
        if (chart != null) {
            LossChart.write(
                    chart,
                    history,
                    String.format(
                            "aule train-lm: validation loss %.3f -> %.3f in %d steps",
                            history.firstValidationLoss(), history.lastValidationLoss(), steps));
            out.println("loss curve: " + chart);
            out.flush();
        }
        return 0;
    }

    /** The settings' own names turned into this command's flags, in a message that starts with one. */
    private static String flag(String message) {
        return message.replaceFirst("^attentionDropout", "--dropout")
                .replaceFirst("^residualDropout", "--residual-dropout")
                .replaceFirst("^evalEvery", "--eval-every")
                .replaceFirst("^steps", "--steps");
    }
}
