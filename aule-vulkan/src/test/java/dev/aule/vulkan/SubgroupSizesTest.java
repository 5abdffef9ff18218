package dev.aule.vulkan;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The blocked forward's CPU layout ties a row group to one subgroup, so its results must hold at every subgroup
 * size: lavapipe's {@code LP_NATIVE_VECTOR_WIDTH} of 128, 512 and 1024 bits gives subgroups of 4, 16 and 32
 * lanes (the default run, 256 bits here, gives 8), each in a forked JVM running {@link SubgroupCasesMain}. Runs
 * only on lavapipe (the variable means nothing to another driver).
 */
class SubgroupSizesTest {
    @Test
    void blockedAndDecodeKernelsMatchTheReferenceAtEverySubgroupSize() throws Exception {
        VulkanBackend vulkan = VulkanTestSupport.backend();
        Assumptions.assumeTrue(
                vulkan.device().info().name().contains("llvmpipe"),
                "not lavapipe: " + vulkan.device().info().name());
        long seed = 80_000;
        for (int[] widthAndLanes : new int[][] {{128, 4}, {512, 16}, {1024, 32}}) {
            List<String> command = new ArrayList<>(List.of(
                    Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "--enable-native-access=ALL-UNNAMED",
                    "-cp",
                    System.getProperty("java.class.path"),
                    SubgroupCasesMain.class.getName(),
                    Long.toString(seed),
                    "10"));
            seed += 1_000;
            File out = Files.createTempFile("aule-subgroup", ".out").toFile();
            File err = Files.createTempFile("aule-subgroup", ".err").toFile();
            try {
                ProcessBuilder builder =
                        new ProcessBuilder(command).redirectOutput(out).redirectError(err);
                builder.environment().put("LP_NATIVE_VECTOR_WIDTH", Integer.toString(widthAndLanes[0]));
                Process process = builder.start();
                if (!process.waitFor(5, TimeUnit.MINUTES)) {
                    process.destroyForcibly();
                }
                String stdout = Files.readString(out.toPath());
                String transcript = "LP_NATIVE_VECTOR_WIDTH=" + widthAndLanes[0] + ": exit " + process.exitValue()
                        + "\n" + stdout + "\n" + Files.readString(err.toPath());
                assertEquals(0, process.exitValue(), transcript);
                assertTrue(stdout.contains("subgroup " + widthAndLanes[1] + "\n"), transcript);
            } finally {
                out.delete();
                err.delete();
            }
        }
    }
}
