package dev.aule.cli;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CommandsTest {
    /** Small enough that the warm-up, the run and the reference all take milliseconds. */
    private static final String[] TINY = {
        "--seq", "33", "--heads", "4", "--kv-heads", "2", "--head-dim", "32", "--warmup", "0", "--runs", "2"
    };

    @Test
    void infoListsTheBuiltInBackendsAndTheSelection() {
        CliRun run = CliRun.of("info");
        assertEquals(0, run.exitCode(), run.err());
        assertTrue(run.out().contains("Vector API"), run.out());
        assertTrue(run.out().lines().anyMatch(l -> l.trim().startsWith("cpu ") && l.contains("yes")), run.out());
        assertTrue(run.out().lines().anyMatch(l -> l.trim().startsWith("reference ") && l.contains("yes")), run.out());
        assertTrue(run.out().contains("Selected"), run.out());
    }

    @Test
    void quickVerifyOfCpuPassesAndSummarises() {
        CliRun run = CliRun.of("verify", "--quick", "--backend", "cpu");
        assertEquals(0, run.exitCode(), run.out() + run.err());
        int cases = ConformanceCases.quick().size();
        assertTrue(run.out().contains(cases + " passed, 0 failed"), run.out());
        assertEquals(cases, run.out().lines().filter(l -> l.endsWith("PASS")).count(), run.out());
    }

    @Test
    void demoOnATinyShapePasses() {
        CliRun run = CliRun.of(withTiny("demo"));
        assertEquals(0, run.exitCode(), run.out() + run.err());
        assertTrue(run.out().contains("GFLOP/s"), run.out());
        assertTrue(run.out().contains("verifying against float64 reference"), run.out());
        assertTrue(run.out().contains("PASS"), run.out());
    }

    @Test
    void demoInSixteenBitsPassesAtItsTolerance() {
        CliRun run = CliRun.of(withTiny("demo", "--dtype", "bf16", "--no-causal"));
        assertEquals(0, run.exitCode(), run.out() + run.err());
        assertTrue(run.out().contains("non-causal, BF16"), run.out());
        assertTrue(run.out().contains("tolerance 1.00e-02: PASS"), run.out());
    }

    @Test
    void benchServeReportsThroughputLatencyAndMemory() {
        CliRun run = CliRun.of(
                "bench",
                "serve",
                "--requests",
                "6",
                "--rate",
                "2",
                "--system-prompt",
                "20",
                "--prompt",
                "4-12",
                "--output",
                "3-9",
                "--max-batch",
                "4",
                "--blocks",
                "64",
                "--block-size",
                "8",
                "--heads",
                "4",
                "--kv-heads",
                "2",
                "--head-dim",
                "16");
        assertEquals(0, run.exitCode(), run.out() + run.err());
        assertTrue(run.out().contains("served        6 requests"), run.out());
        assertTrue(run.out().contains("generated tokens/s"), run.out());
        assertTrue(run.out().contains("p50") && run.out().contains("p99"), run.out());
        assertTrue(run.out().contains("contiguous per-request caches"), run.out());
    }

    @Test
    void benchServeRejectsBadRanges() {
        assertEquals(2, CliRun.of("bench", "serve", "--prompt", "9-x").exitCode());
        CliRun tooSmall = CliRun.of("bench", "serve", "--blocks", "2");
        assertEquals(2, tooSmall.exitCode());
        assertTrue(tooSmall.err().contains("blocks: 2 blocks of 16 cannot hold"), tooSmall.err());
    }

    @Test
    void unknownBackendIsAClearUsageError() {
        for (String command : new String[] {"demo", "verify"}) {
            CliRun run = CliRun.of(command, "--backend", "nope");
            assertEquals(2, run.exitCode(), command);
            assertTrue(run.err().contains("no backend called 'nope'"), run.err());
            assertTrue(run.err().contains("available: cpu"), run.err());
            assertTrue(run.out().isEmpty(), run.out());
        }
    }

    @Test
    void invalidShapeIsOneLineNotAStackTrace() {
        CliRun run = CliRun.of("demo", "--heads", "4", "--kv-heads", "3", "--seq", "8", "--head-dim", "8");
        assertEquals(2, run.exitCode());
        assertTrue(run.err().contains("must be a multiple of KV heads"), run.err());
        assertTrue(!run.err().contains("\tat "), run.err());
    }

    @Test
    void badNumbersAreUsageErrors() {
        assertEquals(2, CliRun.of("demo", "--seq", "many").exitCode());
        assertEquals(2, CliRun.of("demo", "--runs", "0").exitCode());
        assertEquals(2, CliRun.of("frobnicate").exitCode());
    }

    @Test
    void versionAndHelp() {
        CliRun version = CliRun.of("--version");
        assertEquals(0, version.exitCode());
        assertEquals("aule " + Main.VERSION, version.out().trim());
        CliRun help = CliRun.of("--help");
        assertEquals(0, help.exitCode());
        for (String command : new String[] {"info", "demo", "verify"}) {
            assertTrue(help.out().contains(command), help.out());
        }
    }

    private static String[] withTiny(String... args) {
        String[] all = new String[args.length + TINY.length];
        System.arraycopy(args, 0, all, 0, args.length);
        System.arraycopy(TINY, 0, all, args.length, TINY.length);
        return all;
    }
}
