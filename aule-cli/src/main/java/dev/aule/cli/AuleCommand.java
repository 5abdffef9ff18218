package dev.aule.cli;

import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.util.concurrent.Callable;

/**
 * What the {@code aule} subcommands share: {@code --help} and {@code --version}, options listed in the
 * order they are declared, the command's output streams and its usage errors (exit code 2).
 */
@Command(mixinStandardHelpOptions = true, sortOptions = false)
abstract class AuleCommand implements Callable<Integer> {
    @Spec
    private CommandSpec spec;

    /** {@return where the command prints its results} */
    final PrintWriter out() {
        return spec.commandLine().getOut();
    }

    /** {@return where the command prints its progress} */
    final PrintWriter err() {
        return spec.commandLine().getErr();
    }

    /** {@return a progress bar of {@code steps} steps named {@code task}, drawn on {@link #err()}} */
    final ProgressBar progressBar(String task, int steps) {
        return new ProgressBarBuilder()
                .setTaskName(task)
                .setInitialMax(steps)
                .setStyle(ProgressBarStyle.ASCII)
                .setConsumer(new WriterProgressConsumer(err()))
                .setUpdateIntervalMillis(250)
                .build();
    }

    /** {@return a usage error saying {@code message}, for the command to throw} */
    final ParameterException usageError(String message) {
        return new ParameterException(spec.commandLine(), message);
    }

    /** Throws a usage error "{@code what} must be at least {@code min}, got {@code value}" when {@code value < min}. */
    final void requireAtLeast(String what, long value, long min) {
        if (value < min) {
            throw usageError(what + " must be at least " + min + ", got " + value);
        }
    }
}
