package dev.aule.testing;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs a main class of the test classpath in a fresh JVM (the same java binary as this one), for
 * what one JVM cannot show: a heap limit, the absence of a module, a one-time log line.
 */
public final class ForkedJvm {
    private ForkedJvm() {}

    /** What the forked JVM did. */
    public record Result(int exitCode, String stdout, String stderr) {
        /** Both streams, for failure messages. */
        public String transcript() {
            return "exit " + exitCode + "\n--- stdout ---\n" + stdout + "\n--- stderr ---\n" + stderr;
        }
    }

    /**
     * Starts {@code java <jvmFlags> -cp <this classpath> mainClass <args>} and waits up to
     * {@code timeout}; a JVM still running then is killed and reported as exit code -1.
     */
    public static Result run(List<String> jvmFlags, Class<?> mainClass, Duration timeout, String... args)
            throws IOException, InterruptedException {
        return run(jvmFlags, List.of(), mainClass, timeout, args);
    }

    /**
     * {@link #run(List, Class, Duration, String...)} with {@code classPathFirst} ahead of this classpath: for
     * files the child must see and this JVM must not (a service registration, say).
     */
    public static Result run(
            List<String> jvmFlags, List<Path> classPathFirst, Class<?> mainClass, Duration timeout, String... args)
            throws IOException, InterruptedException {
        List<String> command = new ArrayList<>();
        command.add(javaBinary());
        command.addAll(jvmFlags);
        command.add("-cp");
        StringBuilder classPath = new StringBuilder();
        for (Path entry : classPathFirst) {
            classPath.append(entry).append(File.pathSeparator);
        }
        command.add(classPath.append(System.getProperty("java.class.path")).toString());
        command.add(mainClass.getName());
        command.addAll(List.of(args));
        // Files, not pipes: a chatty child cannot block on a full pipe while we wait for it.
        Path stdout = Files.createTempFile("aule-fork", ".out");
        Path stderr = Files.createTempFile("aule-fork", ".err");
        try {
            ProcessBuilder builder =
                    new ProcessBuilder(command).redirectOutput(stdout.toFile()).redirectError(stderr.toFile());
            builder.environment().remove("JAVA_TOOL_OPTIONS"); // its banner would land in stderr
            builder.environment().remove("JDK_JAVA_OPTIONS");
            Process process = builder.start();
            int exit;
            if (process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                exit = process.exitValue();
            } else {
                process.destroyForcibly().waitFor();
                exit = -1;
            }
            return new Result(
                    exit,
                    Files.readString(stdout, StandardCharsets.UTF_8),
                    Files.readString(stderr, StandardCharsets.UTF_8));
        } finally {
            Files.deleteIfExists(stdout);
            Files.deleteIfExists(stderr);
        }
    }

    private static String javaBinary() {
        return ProcessHandle.current()
                .info()
                .command()
                .orElse(System.getProperty("java.home") + File.separator + "bin" + File.separator + "java");
    }
}
