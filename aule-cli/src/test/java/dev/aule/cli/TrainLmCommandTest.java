package dev.aule.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TrainLmCommandTest {
    private static final byte[] PNG_SIGNATURE = {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

    @Test
    void aShortRunPrintsTheLossesAndWritesTheCurve(@TempDir Path dir) throws IOException {
        Path chart = dir.resolve("loss.png");
        CliRun run = CliRun.of("train-lm", "--steps", "4", "--eval-every", "2", "--chart", chart.toString())
                .succeeded();
        run.assertPrinted("step     0  val ", "step     2  train ", "step     4  train ", "sample", "loss curve: ");
        byte[] png = Files.readAllBytes(chart);
        assertArrayEquals(PNG_SIGNATURE, java.util.Arrays.copyOf(png, 8), "a PNG");
    }

    @Test
    void helpListsTheFlags() {
        CliRun.of("train-lm", "--help")
                .succeeded()
                .assertPrinted("--steps", "--eval-every", "--residual-dropout", "--dropout", "--seed", "--chart");
    }

    @Test
    void badSettingsAreUsageErrorsNamingTheFlag() {
        for (String[] args : new String[][] {
            {"train-lm", "--steps", "0"},
            {"train-lm", "--dropout", "1"},
            {"train-lm", "--residual-dropout", "1"},
            {"train-lm", "--eval-every", "0"}
        }) {
            CliRun run = CliRun.of(args);
            assertEquals(2, run.exitCode(), run.out() + run.err());
            assertTrue(run.err().contains(args[1] + ":"), run.err());
        }
    }
}
