package dev.aule.cli;

import dev.aule.Backends;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code aule gpu-check} on whatever Vulkan device this machine has (lavapipe in CI), on tiny shapes. */
class GpuCheckCommandTest {
    @Test
    void verifiesAndTimesPrefillAndDecodeOnTheDevice() {
        Assumptions.assumeTrue(
                Backends.all().stream()
                        .anyMatch(b ->
                                b.name().equals("vulkan") && b.availability().available()),
                "no Vulkan device here");
        CliRun run = CliRun.of("gpu-check", "--quick", "--seq", "32", "--decode-seq", "64,100000000", "--runs", "1")
                .succeeded();
        run.assertPrinted(
                "Device", "passed, 0 failed", "Prefill, B = 1, F16", "device ms", "GFLOP/s", "Decode, B = 1", "GB/s");
        // A context past the device's storage limit is reported as skipped, and the grid goes on.
        assertTrue(run.out().contains("skipped: shape: [1, 8, 100000000, 128]"), run.out());
    }

    @Test
    void refusesRunsBelowOne() {
        CliRun run = CliRun.of("gpu-check", "--runs", "0");
        assertTrue(run.exitCode() == 2 && run.err().contains("--runs must be at least 1"), run.out() + run.err());
    }
}
