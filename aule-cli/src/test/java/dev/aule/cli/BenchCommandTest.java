package dev.aule.cli;

import dev.aule.Backends;
import org.junit.jupiter.api.Assumptions;
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

    /** The vulkan contender reports its device time from GPU timestamps; the others have none ("-"). */
    @Test
    void theVulkanContenderReportsItsDeviceTime(@TempDir Path dir) throws IOException {
        Assumptions.assumeTrue(
                Backends.all().stream()
                        .anyMatch(b ->
                                b.name().equals("vulkan") && b.availability().available()),
                "no Vulkan device here");
        CliRun run = quickSweep(
                        dir,
                        "--seq",
                        "32",
                        "--head-dim",
                        "16",
                        "--heads",
                        "1",
                        "--causal",
                        "false",
                        "--contenders",
                        "cpu,vulkan",
                        "--peak-seconds",
                        "0")
                .succeeded();
        run.assertPrinted("device ms");
        String vulkanRow = run.out()
                .lines()
                .filter(l -> l.contains("S=32") && l.contains("vulkan"))
                .findFirst()
                .orElseThrow(() -> new AssertionError(run.out()));
        String cpuRow = run.out()
                .lines()
                .filter(l -> l.contains("S=32") && l.contains(" cpu "))
                .findFirst()
                .orElseThrow(() -> new AssertionError(run.out()));
        List<String> vulkanCells = Arrays.asList(vulkanRow.trim().split("\\s{2,}"));
        List<String> cpuCells = Arrays.asList(cpuRow.trim().split("\\s{2,}"));
        double deviceMs = Double.parseDouble(vulkanCells.get(3));
        assertTrue(deviceMs > 0, vulkanRow);
        assertTrue(
                deviceMs <= Double.parseDouble(vulkanCells.get(2)) * 1.01,
                "device time within the call's wall time: " + vulkanRow);
        assertEquals("-", cpuCells.get(3), cpuRow);
        List<String> csv = Files.readAllLines(dir.resolve("results.csv"));
        assertTrue(csv.getFirst().endsWith(",device_ms"), csv.getFirst());
        String vulkanCsv =
                csv.stream().filter(l -> l.contains(",vulkan,")).findFirst().orElseThrow();
        assertTrue(Double.parseDouble(vulkanCsv.substring(vulkanCsv.lastIndexOf(',') + 1)) > 0, vulkanCsv);
        assertTrue(
                csv.stream().filter(l -> l.contains(",cpu,")).allMatch(l -> l.endsWith(",")), String.join("\n", csv));
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
