package dev.aule.cli;

import dev.aule.spi.AttentionBackend;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.Properties;
import java.util.concurrent.Callable;

/** The {@code aule} command. With no subcommand it runs {@code demo}, so a bare {@code aule} shows the library at work. */
@Command(
        name = "aule",
        mixinStandardHelpOptions = true,
        versionProvider = Main.Version.class,
        description =
                "FlashAttention for the JVM: inspect backends, time a forward pass, check conformance, benchmark against peers.",
        subcommands = {
            InfoCommand.class,
            DemoCommand.class,
            VerifyCommand.class,
            GpuCheckCommand.class,
            BenchCommand.class,
            TrainDemoCommand.class,
            TrainLmCommand.class,
            EmbedCommand.class,
            CommandLine.HelpCommand.class
        })
public final class Main implements Callable<Integer> {
    /** This build's project version, as {@code aule --version} and {@code aule info} print it. */
    static final String VERSION = Version.projectVersion();

    @Spec
    private CommandSpec spec;

    @Override
    public Integer call() {
        return spec.subcommands().get("demo").execute();
    }

    /** The command line with this project's converters and error handling, ready to execute; tests use it too. */
    public static CommandLine commandLine() {
        return new CommandLine(new Main())
                .registerConverter(AttentionBackend.class, new BackendConverter())
                .setCaseInsensitiveEnumValuesAllowed(true)
                .setParameterExceptionHandler(new ErrorHandlers.BadArguments())
                .setExecutionExceptionHandler(new ErrorHandlers.Failures());
    }

    public static void main(String[] args) {
        System.exit(run(commandLine(), args));
    }

    /**
     * Executes {@code args} on {@code cl}: the exit code of the command, or of {@link ErrorHandlers#fatal} when the
     * JVM ran out of memory or could not load a class (errors the command's handler never sees).
     */
    static int run(CommandLine cl, String... args) {
        try {
            return cl.execute(args);
        } catch (OutOfMemoryError | LinkageError e) {
            return ErrorHandlers.fatal(e, cl.getErr());
        }
    }

    /**
     * {@code aule --version}: the project version the build wrote into aule-cli.jar's manifest
     * (Implementation-Version). Run from classes (tests, an IDE) there is no manifest, and the version
     * comes from version.properties, which the build copies beside this class with the same project version.
     */
    static final class Version implements CommandLine.IVersionProvider {
        private static final String RESOURCE = "version.properties";

        @Override
        public String[] getVersion() {
            return new String[] {"aule " + VERSION};
        }

        static String projectVersion() {
            String fromManifest = Main.class.getPackage().getImplementationVersion();
            return fromManifest != null ? fromManifest : fromResource();
        }

        private static String fromResource() {
            try (InputStream in = Main.class.getResourceAsStream(RESOURCE)) {
                if (in == null) {
                    throw new IllegalStateException(RESOURCE + " is missing beside " + Main.class.getName());
                }
                Properties properties = new Properties();
                properties.load(in);
                String version = properties.getProperty("version");
                if (version == null) {
                    throw new IllegalStateException(RESOURCE + " has no version entry");
                }
                return version;
            } catch (IOException e) {
                throw new UncheckedIOException("cannot read " + RESOURCE, e);
            }
        }
    }
}
