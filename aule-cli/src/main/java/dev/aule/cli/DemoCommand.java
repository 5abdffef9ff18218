package dev.aule.cli;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.bench.Stopwatch;
import dev.aule.spi.Accuracy;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.AttentionShape;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.util.Locale;
import java.util.SplittableRandom;

/** {@code aule demo}: one Llama-like attention forward, timed, then checked against the float64 reference. */
@Command(
        name = "demo",
        description = {
            "Time a forward pass on a Llama-like shape (GQA, causal) and check it against the float64 reference.",
            "Exits 1 when the result is outside tolerance (1e-5 for F32, 1e-2 for F16/BF16)."
        })
final class DemoCommand extends AuleCommand {
    @Option(names = "--batch", defaultValue = "1", description = "batch size B (default ${DEFAULT-VALUE})")
    private int batch;

    @Option(names = "--heads", defaultValue = "32", description = "query heads Hq (default ${DEFAULT-VALUE})")
    private int heads;

    @Option(
            names = "--kv-heads",
            defaultValue = "8",
            description = "key/value heads Hkv, dividing Hq (default ${DEFAULT-VALUE})")
    private int kvHeads;

    @Option(
            names = "--seq",
            defaultValue = "1024",
            description = "sequence length S of queries and keys (default ${DEFAULT-VALUE})")
    private int seq;

    @Option(names = "--head-dim", defaultValue = "128", description = "head dim D (default ${DEFAULT-VALUE})")
    private int headDim;

    @Option(
            names = "--causal",
            negatable = true,
            defaultValue = "true",
            fallbackValue = "true",
            description = "causal masking (default on; --no-causal for full attention)")
    private boolean causal;

    @Option(
            names = "--dtype",
            defaultValue = "F32",
            description = "storage type: ${COMPLETION-CANDIDATES} (default ${DEFAULT-VALUE})")
    private DType dtype;

    @Option(
            names = "--backend",
            converter = BackendConverter.class,
            paramLabel = "NAME",
            description = "backend to time (default: the selected one)")
    private AttentionBackend backend;

    @Option(names = "--warmup", defaultValue = "2", description = "untimed runs first (default ${DEFAULT-VALUE})")
    private int warmup;

    @Option(
            names = "--runs",
            defaultValue = "5",
            description = "timed runs; the median is reported (default ${DEFAULT-VALUE})")
    private int runs;

    @Mixin
    private final InputSeed seed = new InputSeed(42);

    @Override
    public Integer call() {
        checkCounts();
        PrintWriter out = out();
        Labels labels = new Labels(out, 10);
        Selection selection = Selection.of(backend);
        AttentionBackend chosen = selection.backend();
        AttentionOptions options = AttentionOptions.builder().causal(causal).build();

        SplittableRandom rnd = new SplittableRandom(seed.value());
        Tensor q = RandomFill.fill(Tensor.allocate(dtype, batch, heads, seq, headDim), rnd);
        Tensor k = RandomFill.fill(Tensor.allocate(dtype, batch, kvHeads, seq, headDim), rnd);
        Tensor v = RandomFill.fill(Tensor.allocate(dtype, batch, kvHeads, seq, headDim), rnd);
        AttentionShape shape = AttentionShape.ofInputs(q, k, v, options, chosen.capabilities());
        Tensor result = Tensor.allocate(dtype, batch, heads, seq, headDim);

        out.println(
                "aule demo: one attention forward pass, timed and verified ('aule --help' lists the other commands)");
        labels.print("shape", describe(shape));
        labels.print("backend", chosen.name() + ": " + chosen.description() + " (" + selection.reason() + ")");
        out.flush();

        // Poisoned before every run, so an element the backend skips shows up as NaN in the check.
        Stopwatch stopwatch = new Stopwatch(Stopwatch.Warmup.calls(warmup), runs);
        Runnable poison = () -> result.fill(Float.NaN);
        double seconds = stopwatch
                .time(poison, () -> chosen.forward(q, k, v, result, null, options))
                .medianSeconds();
        double flops = shape.forwardFlops(options);
        labels.print(
                "time",
                String.format(
                        Locale.ROOT, "%.2f ms median of %d runs (after %d warm-up)", seconds * 1e3, runs, warmup));
        labels.print(
                "speed",
                String.format(
                        Locale.ROOT,
                        "%.1f GFLOP/s (%.4g GFLOP per forward, 4*B*Hq*D*visible pairs)",
                        flops / seconds / 1e9,
                        flops / 1e9));

        double error = errorAgainstReference(out, q, k, v, result, options);
        double tolerance = Accuracy.tolerance(dtype);
        boolean pass = Accuracy.within(error, tolerance);
        labels.print(
                "error",
                ErrorText.format(error) + " max|out-ref|/max(1,max|ref|), tolerance " + ErrorText.format(tolerance)
                        + ": " + (pass ? "PASS" : "FAIL"));
        out.flush();
        return pass ? 0 : ErrorHandlers.FAILURE;
    }

    /** The reference is float64 and single-pass, so this is the slow step: say so before it starts. */
    private static double errorAgainstReference(
            PrintWriter out, Tensor q, Tensor k, Tensor v, Tensor result, AttentionOptions options) {
        out.print("verifying against float64 reference... ");
        out.flush();
        Tensor expected = Tensor.allocate(DType.F32, result.batch(), result.heads(), result.seqLen(), result.headDim());
        long start = System.nanoTime();
        Backends.get("reference").forward(q, k, v, expected, null, options);
        out.printf(Locale.ROOT, "done in %.1f s%n", (System.nanoTime() - start) / 1e9);
        return Accuracy.relativeError(result, expected);
    }

    private String describe(AttentionShape s) {
        String grouping =
                s.kvHeads() == s.queryHeads() ? "MHA" : s.kvHeads() == 1 ? "MQA" : "GQA " + s.groupSize() + ":1";
        return String.format(
                Locale.ROOT,
                "B=%d Hq=%d Hkv=%d (%s) S=%d D=%d, %s, %s",
                s.batch(),
                s.queryHeads(),
                s.kvHeads(),
                grouping,
                s.queryLen(),
                s.headDim(),
                causal ? "causal" : "non-causal",
                dtype);
    }

    private void checkCounts() {
        requireAtLeast("--runs", runs, 1);
        requireAtLeast("--warmup", warmup, 0);
    }
}
