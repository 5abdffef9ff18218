package dev.aule.cli;

import dev.aule.bench.BenchShape;
import dev.aule.bench.ContenderTiming;
import dev.aule.bench.PreparedAttention;
import dev.aule.bench.Sweep;
import picocli.CommandLine.Option;

import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code --warmup}, {@code --warmup-time} and {@code --runs}: how long a sweep warms up and how often it times each
 * shape; the command gives the defaults.
 */
final class SweepTiming {
    @Option(names = "--warmup", description = "untimed calls per shape (default ${DEFAULT-VALUE})")
    private int warmup;

    @Option(
            names = "--warmup-time",
            paramLabel = "SECONDS",
            description =
                    "and keep warming up for at least this long per shape, so the JIT has compiled (default ${DEFAULT-VALUE})")
    private double warmupTime;

    @Option(names = "--runs", description = "timed calls per shape; the median is reported (default ${DEFAULT-VALUE})")
    private int runs;

    SweepTiming(int defaultWarmup, double defaultWarmupTime, int defaultRuns) {
        warmup = defaultWarmup;
        warmupTime = defaultWarmupTime;
        runs = defaultRuns;
    }

    /** Throws {@code command}'s usage error unless there is a timed call and no warm-up count or time is negative. */
    void check(AuleCommand command) {
        command.requireAtLeast("--runs", runs, 1);
        command.requireAtLeast("--warmup", warmup, 0);
        if (!(warmupTime >= 0)) {
            throw command.usageError("--warmup-time must be at least 0, got " + warmupTime);
        }
    }

    /** {@return {@code contenders} timed on {@code shape} with these warm-up and timed calls} */
    List<ContenderTiming> measure(BenchShape shape, Map<String, PreparedAttention> contenders) {
        return Sweep.measure(shape, contenders, warmup, warmupTime, runs);
    }

    /** {@return the timed calls per shape} */
    int runs() {
        return runs;
    }

    /** {@return the warm-up and the timed calls, as the sweep's first line says them} */
    String describe() {
        return String.format(
                Locale.ROOT, "%d warm-up calls (at least %.1f s) and %d timed calls each", warmup, warmupTime, runs);
    }
}
