package dev.aule.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

import java.util.concurrent.Callable;

/** The {@code aule} command. With no subcommand it runs {@code demo}, so a bare {@code aule} shows the library at work. */
@Command(name = "aule",
        mixinStandardHelpOptions = true,
        version = "aule " + Main.VERSION,
        description = "FlashAttention for the JVM: inspect backends, time a forward pass, check conformance, benchmark against peers.",
        subcommands = {InfoCommand.class, DemoCommand.class, VerifyCommand.class, BenchCommand.class, TrainDemoCommand.class,
                CommandLine.HelpCommand.class})
public final class Main implements Callable<Integer> {
    static final String VERSION = "0.1.0-SNAPSHOT";

    @Spec
    private CommandSpec spec;

    @Override
    public Integer call() {
        return spec.subcommands().get("demo").execute();
    }

    /** The command line with this project's error handling, ready to execute; tests use it too. */
    public static CommandLine commandLine() {
        return new CommandLine(new Main())
                .setCaseInsensitiveEnumValuesAllowed(true)
                .setParameterExceptionHandler(new ErrorHandlers.BadArguments())
                .setExecutionExceptionHandler(new ErrorHandlers.Failures());
    }

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }
}
