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
    @Mixin
    private final AttentionShapeOptions shapeOptions = new AttentionShapeOptions();

    @Option(
            names = "--causal",
            negatable = true,
            defaultValue = "true",
            fallbackValue = "true",
            description = "causal masking (default on; --no-causal for full attention)")
    private boolean causal;

    @Mixin
    private final StorageType storage = new StorageType(DType.F32);

    @Option(names = "--backend", paramLabel = "NAME", description = "backend to time (default: the selected one)")
    private AttentionBackend backend;

    @Mixin
    private final Timing timing = new Timing(2, 5);

    @Mixin
    private final InputSeed seed = new InputSeed(42);

    @Override
    public Integer call() {
        timing.check(this);
        DType dtype = storage.value();
        PrintWriter out = out();
        Labels labels = new Labels(out, 10);
        Selection selection = Selection.of(backend);
        AttentionBackend chosen = selection.backend();
        AttentionOptions options = AttentionOptions.builder().causal(causal).build();

        SplittableRandom rnd = new SplittableRandom(seed.value());
        Tensor q = RandomFill.fill(shapeOptions.allocateQueries(dtype), rnd);
        Tensor k = RandomFill.fill(shapeOptions.allocateKeys(dtype), rnd);
        Tensor v = RandomFill.fill(shapeOptions.allocateKeys(dtype), rnd);
        AttentionShape shape = AttentionShape.ofInputs(q, k, v, options, chosen.capabilities());
        Tensor result = shapeOptions.allocateQueries(dtype);

        out.println(
                "aule demo: one attention forward pass, timed and verified ('aule --help' lists the other commands)");
        labels.print("shape", describe(shape));
        labels.print("backend", chosen.name() + ": " + chosen.description() + " (" + selection.reason() + ")");
        out.flush();

        // Poisoned before every run, so an element the backend skips shows up as NaN in the check.
        Stopwatch stopwatch = timing.stopwatch();
        Runnable poison = () -> result.fill(Float.NaN);
        double seconds = stopwatch
                .time(poison, () -> chosen.forward(q, k, v, result, null, options))
                .medianSeconds();
        double flops = shape.forwardFlops(options);
        labels.print(
                "time",
                String.format(
                        Locale.ROOT,
                        "%.2f ms median of %d runs (after %d warm-up)",
                        seconds * 1e3,
                        timing.runs(),
                        timing.warmup()));
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
                storage.value());
    }
}
