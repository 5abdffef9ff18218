package dev.aule;

import dev.aule.testing.ForkedJvm;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * One bad component never breaks the rest: broken providers on the class path are listed with their reason
 * and skipped, and a bad {@code aule.cpu.threads} gives one warning and the default pool, the cpu backend
 * working in both. Each case needs a JVM of its own (discovery and the pool happen once per JVM).
 */
class IsolationTest {

    @Test
    void brokenProvidersAreListedWithTheirReasonAndSkipped(@TempDir Path dir) throws Exception {
        Path services = dir.resolve("META-INF/services");
        Files.createDirectories(services);
        String main = BrokenProvidersMain.class.getName();
        Files.writeString(
                services.resolve("dev.aule.spi.AttentionBackend"),
                String.join(
                        "\n",
                        main + "$ThrowingConstructor",
                        main + "$NullName",
                        main + "$ThrowingAvailability",
                        main + "$FailingInitialiser",
                        "dev.aule.NoSuchBackend",
                        ""));
        ForkedJvm.Result result =
                ForkedJvm.run(vectorFlags(), List.of(dir), BrokenProvidersMain.class, Duration.ofMinutes(4));
        assertEquals(0, result.exitCode(), result::transcript);
        String stdout = result.stdout();
        assertTrue(stdout.contains("FORWARD OK cpu "), result::transcript);
        assertTrue(stdout.contains("BACKEND cpu true"), result::transcript);
        for (String reason : new String[] {
            "no device here",
            "name() returned null",
            "driver probe crashed",
            "NoSuchBackend",
            "ExceptionInInitializerError"
        }) {
            assertTrue(
                    stdout.lines().anyMatch(l -> l.contains(" false ") && l.contains(reason)),
                    "a listed, unavailable provider with the reason '" + reason + "'\n" + result.transcript());
        }
        assertTrue(result.stderr().contains("skipped"), result::transcript);
    }

    @Test
    void aBadThreadCountWarnsAndUsesTheCores() throws Exception {
        for (String threads : new String[] {"0", "-1", "1.5", "100000", "many"}) {
            List<String> flags = new ArrayList<>(vectorFlags());
            flags.add("-Daule.cpu.threads=" + threads);
            ForkedJvm.Result result = ForkedJvm.run(flags, List.of(), BrokenProvidersMain.class, Duration.ofMinutes(4));
            assertEquals(0, result.exitCode(), result::transcript);
            assertTrue(result.stdout().contains("FORWARD OK cpu "), result::transcript);
            assertTrue(
                    result.stderr().contains("aule.cpu.threads must be an integer in [1, 1024], got '" + threads + "'"),
                    result::transcript);
        }
    }

    private static List<String> vectorFlags() {
        return ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent()
                ? List.of("--add-modules", "jdk.incubator.vector")
                : List.of();
    }
}
