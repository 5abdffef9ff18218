package dev.aule.cli;

import picocli.CommandLine.Option;

/** {@code --seed}, the seed of a command's random inputs; the command gives its default. */
final class InputSeed {
    @Option(names = "--seed", description = "random seed for the inputs (default ${DEFAULT-VALUE})")
    private long seed;

    InputSeed(long defaultSeed) {
        seed = defaultSeed;
    }

    long value() {
        return seed;
    }
}
