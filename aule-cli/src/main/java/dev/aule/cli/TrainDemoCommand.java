package dev.aule.cli;

import dev.aule.examples.TrainDemo;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.util.concurrent.Callable;

/** {@code aule train-demo}: the training example, a causal attention model learning a copy task. */
@Command(
        name = "train-demo",
        description = "Train a one-layer causal attention model on a copy task with the library's forward and "
                + "backward and a plain Adam; prints the loss falling and the final accuracy.")
final class TrainDemoCommand implements Callable<Integer> {

    @Option(names = "--steps", defaultValue = "300", description = "Adam steps (default: ${DEFAULT-VALUE}).")
    private int steps;

    @Override
    public Integer call() {
        if (steps < 1) {
            throw new picocli.CommandLine.ParameterException(
                    new picocli.CommandLine(this), "--steps: must be at least 1, got " + steps);
        }
        TrainDemo.run(steps, System.out);
        return 0;
    }
}
