package dev.aule.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import javax.imageio.ImageIO;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BenchCommandTest {
    private static final byte[] PNG_SIGNATURE = {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

    @Test
    void aTinySweepPrintsTheTableAndWritesCsvAndCharts(@TempDir Path dir) throws IOException {
        CliRun run = quickSweep(dir, "--seq", "64,96", "--head-dim", "32", "--heads", "2", "--peak-seconds", "0.05")
                .succeeded();
        run.assertPrinted("FMA peak: ");
        for (String column : new String[] {"shape", "contender", "ms", "GFLOP/s", "% peak"}) {
            run.assertPrinted(column);
        }
        for (String contender : new String[] {"cpu", "naive", "onnxruntime"}) {
            for (String shape : new String[] {"S=64 D=32 full", "S=96 D=32 causal"}) {
                assertTrue(
                        run.out().lines().anyMatch(l -> l.contains(shape) && l.contains(contender) && l.contains("%")),
                        contender + " " + shape + "\n" + run.out());
            }
        }
        assertTrue(run.err().contains("bench"), run.err()); // the progress bar

        List<String> csv = Files.readAllLines(dir.resolve("results.csv"));
        assertEquals(1 + 2 * 2 * 3, csv.size(), String.join("\n", csv));
        for (String chart : new String[] {"gflops-D32-full.png", "gflops-D32-causal.png", "time.png", "memory.png"}) {
            Path file = dir.resolve(chart);
            assertTrue(Files.isRegularFile(file), chart);
            byte[] bytes = Files.readAllBytes(file);
            assertArrayEquals(PNG_SIGNATURE, Arrays.copyOf(bytes, PNG_SIGNATURE.length), chart);
            BufferedImage image = ImageIO.read(file.toFile());
            assertNotNull(image, chart);
            assertTrue(image.getWidth() > 100 && image.getHeight() > 100, chart);
            run.assertPrinted("wrote " + file);
        }
    }

    @Test
    void badSweepArgumentsAreUsageErrors(@TempDir Path dir) {
        CliRun unknown = CliRun.of("bench", "--contenders", "cpu,nope", "--out", dir.toString());
        assertEquals(2, unknown.exitCode());
        assertTrue(unknown.err().contains("no 'nope'"), unknown.err());
        assertTrue(unknown.err().contains("onnxruntime"), unknown.err());
        assertEquals(
                2,
                CliRun.of("bench", "--peak-seconds", "-1", "--out", dir.toString())
                        .exitCode());
        assertEquals(
                2, CliRun.of("bench", "--runs", "0", "--out", dir.toString()).exitCode());
        assertEquals(
                2, CliRun.of("bench", "--seq", "0", "--out", dir.toString()).exitCode());
        assertEquals(
                2,
                CliRun.of("bench", "--causal", "maybe", "--out", dir.toString()).exitCode());
    }

    @Test
    void oneMaskingAndOneContender(@TempDir Path dir) throws IOException {
        CliRun run = quickSweep(
                        dir,
                        "--seq",
                        "80",
                        "--head-dim",
                        "16",
                        "--heads",
                        "1",
                        "--causal",
                        "true",
                        "--contenders",
                        "cpu",
                        "--peak-seconds",
                        "0")
                .succeeded();
        run.assertPrinted("H=1 S=80 D=16 causal");
        assertTrue(!run.out().contains("full"), run.out());
        assertEquals(2, Files.readAllLines(dir.resolve("results.csv")).size());
        assertTrue(Files.isRegularFile(dir.resolve("gflops-D16-causal.png")));
    }

    @Test
    void benchTakesSubcommands() {
        CliRun.of("bench", "help").succeeded().assertPrinted("--contenders");
    }

    /** {@code aule bench} with {@code args}, no warm-up and one timed call per shape, results in {@code dir}. */
    private static CliRun quickSweep(Path dir, String... args) {
        List<String> all = new ArrayList<>(List.of("bench"));
        all.addAll(List.of(args));
        all.addAll(List.of("--warmup", "0", "--warmup-time", "0", "--runs", "1", "--out", dir.toString()));
        return CliRun.of(all.toArray(String[]::new));
    }
}
