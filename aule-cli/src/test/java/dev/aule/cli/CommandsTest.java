package dev.aule.cli;

import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CommandsTest {
    /** A help line that starts an option's entry, by its names and parameter. */
    private static final Pattern OPTION_LINE = Pattern.compile("^ {2}(-\\w, --\\S+| {4}--\\S+)");

    /** Small enough that the warm-up, the run and the reference all take milliseconds. */
    private static final String[] TINY = {
        "--seq", "33", "--heads", "4", "--kv-heads", "2", "--head-dim", "32", "--warmup", "0", "--runs", "2"
    };

    @Test
    void infoListsTheBuiltInBackendsAndTheSelection() {
        CliRun run = CliRun.of("info").succeeded();
        run.assertPrinted("Vector API");
        assertTrue(run.out().lines().anyMatch(l -> l.trim().startsWith("cpu ") && l.contains("yes")), run.out());
        assertTrue(run.out().lines().anyMatch(l -> l.trim().startsWith("reference ") && l.contains("yes")), run.out());
        run.assertPrinted("Selected");
    }

    @Test
    void quickVerifyOfCpuPassesAndSummarises() {
        CliRun run = CliRun.of("verify", "--quick", "--backend", "cpu").succeeded();
        int cases = ConformanceCases.quick().size();
        run.assertPrinted(cases + " passed, 0 failed");
        assertEquals(cases, run.out().lines().filter(l -> l.endsWith("PASS")).count(), run.out());
    }

    @Test
    void demoOnATinyShapePasses() {
        CliRun run = CliRun.of(withTiny("demo")).succeeded();
        run.assertPrinted("GFLOP/s", "verifying against float64 reference", "PASS");
    }

    @Test
    void demoInSixteenBitsPassesAtItsTolerance() {
        CliRun run =
                CliRun.of(withTiny("demo", "--dtype", "bf16", "--no-causal")).succeeded();
        run.assertPrinted("non-causal, BF16", "tolerance 1.00e-02: PASS");
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
                        "16")
                .succeeded();
        run.assertPrinted(
                "served        6 requests", "generated tokens/s", "p50", "p99", "contiguous per-request caches");
    }

    @Test
    void benchServeRunsUnderAStreamingPolicy() {
        CliRun run = CliRun.of(
                        "bench",
                        "serve",
                        "--requests",
                        "4",
                        "--rate",
                        "2",
                        "--system-prompt",
                        "20",
                        "--prompt",
                        "4-30",
                        "--output",
                        "3-20",
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
                        "16",
                        "--sinks",
                        "4",
                        "--window",
                        "16")
                .succeeded();
        run.assertPrinted("streaming     4 sink tokens and a window of 16", "served        4 requests");
        CliRun bad = CliRun.of("bench", "serve", "--sinks", "4", "--window", "0");
        assertEquals(2, bad.exitCode(), bad.err());
        CliRun mixed = CliRun.of("bench", "serve", "--sinks", "4", "--cache-format", "int8");
        assertEquals(2, mixed.exitCode(), mixed.err());
        assertTrue(mixed.err().contains("--sinks: streaming needs an f32, f16 or bf16 cache"), mixed.err());
    }

    @Test
    void benchServeComparesCacheFormatsSideBySide() {
        CliRun run = CliRun.of(
                        "bench",
                        "serve",
                        "--requests",
                        "4",
                        "--rate",
                        "2",
                        "--system-prompt",
                        "16",
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
                        "16",
                        "--cache-format",
                        "f16,int8,fp8-e5m2")
                .succeeded();
        run.assertPrinted("cache format  int8", "cache format  fp8-e5m2", "tokens/s", "vs first", "peak MiB");
        CliRun bad = CliRun.of("bench", "serve", "--cache-format", "int4");
        assertEquals(2, bad.exitCode());
        assertTrue(bad.err().contains("--cache-format: cache format: 'int4'"), bad.err());
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
        CliRun.of("--help").succeeded().assertPrinted("info", "demo", "verify");
    }

    /** The options the commands share come from mixins; the help must still list them where the command puts them. */
    @Test
    void helpListsOptionsInTheirOrderWithTheirDefaults() {
        assertEquals(
                List.of(
                        "--batch=<batch>",
                        "--heads=<heads>",
                        "--kv-heads=<kvHeads>",
                        "--seq=<seq>",
                        "--head-dim=<headDim>",
                        "--[no-]causal",
                        "--dtype=<dtype>",
                        "--backend=NAME",
                        "--warmup=<warmup>",
                        "--runs=<runs>",
                        "--seed=<seed>",
                        "-h, --help",
                        "-V, --version"),
                optionsIn("demo", "--help"));
        assertEquals(
                List.of(
                        "--requests=<requests>",
                        "--rate=<rate>",
                        "--system-prompt=<systemPrompt>",
                        "--prompt=MIN-MAX",
                        "--output=MIN-MAX",
                        "--max-batch=<maxBatch>",
                        "--blocks=<blocks>",
                        "--block-size=<blockSize>",
                        "--heads=<heads>",
                        "--kv-heads=<kvHeads>",
                        "--head-dim=<headDim>",
                        "--dtype=<dtype>",
                        "--seed=<seed>",
                        "--sinks=<sinks>",
                        "--window=<window>",
                        "--cache-format=FORMATS",
                        "-h, --help",
                        "-V, --version"),
                optionsIn("bench", "serve", "--help"));
        assertEquals(
                List.of(
                        "--seq=<seqs>[,<seqs>...]",
                        "--head-dim=<headDims>[,<headDims>...]",
                        "--heads=<heads>",
                        "--causal=<causal>[,<causal>...]",
                        "--contenders=NAME[,NAME...]",
                        "--peak-seconds=S",
                        "--warmup=<warmup>",
                        "--warmup-time=SECONDS",
                        "--runs=<runs>",
                        "--out=DIR",
                        "-h, --help",
                        "-V, --version"),
                optionsIn("bench", "--help"));
        assertEquals(
                List.of("--backend=NAME", "--quick", "--seed=<seed>", "-h, --help", "-V, --version"),
                optionsIn("verify", "--help"));

        CliRun.of("demo", "--help")
                .assertPrinted(
                        "query heads Hq (default 32)",
                        "key/value heads Hkv, dividing Hq (default 8)",
                        "head dim D (default 128)",
                        "storage type: F32, F16, BF16 (default F32)",
                        "untimed runs first (default 2)",
                        "timed runs; the median is reported (default 5)");
        CliRun.of("bench", "serve", "--help")
                .assertPrinted("query heads Hq (default 32)", "head dim D (default 128)", "(default F16)");
        CliRun.of("bench", "--help")
                .assertPrinted("untimed calls per shape (default 1)", "(default 1.0)", "(default 3)");
    }

    /** The option column of a command's help, one entry per option, in the order it is listed. */
    private static List<String> optionsIn(String... helpArgs) {
        return CliRun.of(helpArgs)
                .succeeded()
                .out()
                .lines()
                .map(OPTION_LINE::matcher)
                .filter(Matcher::find)
                .map(m -> m.group(1).trim())
                .toList();
    }

    private static String[] withTiny(String... args) {
        String[] all = new String[args.length + TINY.length];
        System.arraycopy(args, 0, all, 0, args.length);
        System.arraycopy(TINY, 0, all, args.length, TINY.length);
        return all;
    }
}
