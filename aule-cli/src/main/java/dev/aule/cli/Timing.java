package dev.aule.cli;

import dev.aule.bench.Stopwatch;
import picocli.CommandLine.Option;

/** {@code --warmup} and {@code --runs}: the untimed and the timed calls of one measurement; the command gives the defaults. */
final class Timing {
    @Option(names = "--warmup", description = "untimed runs first (default ${DEFAULT-VALUE})")
    private int warmup;

    @Option(names = "--runs", description = "timed runs; the median is reported (default ${DEFAULT-VALUE})")
    private int runs;

    Timing(int defaultWarmup, int defaultRuns) {
        warmup = defaultWarmup;
        runs = defaultRuns;
    }

    /** Throws {@code command}'s usage error unless there is at least one timed run and no negative warm-up. */
    void check(AuleCommand command) {
        command.requireAtLeast("--runs", runs, 1);
        command.requireAtLeast("--warmup", warmup, 0);
    }

    /** {@return a stopwatch making these warm-up and timed calls} */
    Stopwatch stopwatch() {
        return new Stopwatch(Stopwatch.Warmup.calls(warmup), runs);
    }

    /** {@return the untimed calls} */
    int warmup() {
        return warmup;
    }

    /** {@return the timed calls} */
    int runs() {
        return runs;
    }
}
