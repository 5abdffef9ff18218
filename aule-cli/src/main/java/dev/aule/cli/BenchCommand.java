package dev.aule.cli;

import dev.aule.bench.BenchShape;
import dev.aule.bench.ContenderTiming;
import dev.aule.bench.Contenders;
import dev.aule.bench.FmaPeak;
import dev.aule.bench.PreparedAttention;
import me.tongfei.progressbar.ProgressBar;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;

/**
 * {@code aule bench}: a prefill sweep of backends and peers with a progress bar, a table, a CSV and
 * PNG charts. Subcommands run other kinds of benchmark: {@code serve} simulates LLM serving over a paged KV cache,
 * {@code embed} times sentence embeddings against ONNX Runtime.
 */
@Command(
        name = "bench",
        description = {
            "Sweep prefill shapes (B=1, F32) over backends and peers: prints ms, GFLOP/s and %% of the",
            "machine's FMA peak measured in the same run, writes results.csv and PNG charts.",
            "Peers: naive (the Java engines' full-score-matrix attention), onnxruntime (ONNX Runtime 1.29 CPU).",
            "device ms: a device contender's (vulkan's) median time by the GPU's timestamps, without the host side.",
            "Every contender but cpu is checked equal to cpu before it is timed; exits 1 if one differs."
        },
        subcommands = {ServeCommand.class, BenchEmbedCommand.class, CommandLine.HelpCommand.class})
final class BenchCommand extends AuleCommand {
    @Mixin
    private final SweepShapes sweep = new SweepShapes();

    @Option(
            names = "--contenders",
            split = ",",
            defaultValue = "cpu,naive,onnxruntime",
            paramLabel = "NAME",
            description = "backends and peers to time (default ${DEFAULT-VALUE})")
    private String[] contenders;

    @Option(
            names = "--peak-seconds",
            defaultValue = "0.5",
            paramLabel = "S",
            description = "seconds per run of the FMA peak yardstick (independent FMAs in registers, all cores, best"
                    + " of 3); 0 skips it (default ${DEFAULT-VALUE})")
    private double peakSeconds;

    @Mixin
    private final SweepTiming timing = new SweepTiming(1, 1.0, 3);

    @Option(
            names = "--out",
            defaultValue = "bench-results",
            paramLabel = "DIR",
            description = "directory for results.csv and the charts (default ${DEFAULT-VALUE})")
    private Path outDir;

    @Override
    public Integer call() {
        checkArguments();
        PrintWriter out = out();
        List<BenchShape> shapes = sweep.shapes();
        out.printf(
                Locale.ROOT,
                "aule bench: %d shapes x %d contenders, %s (contenders interleaved), results in %s%n",
                shapes.size(),
                contenders.length,
                timing.describe(),
                outDir);
        out.flush();

        List<ContenderTiming> results = new ArrayList<>();
        List<String[]> rows = new ArrayList<>();
        boolean mismatch = false;
        double peakRate;
        try (ProgressBar bar = progressBar("bench", shapes.size() * contenders.length + (peakSeconds > 0 ? 1 : 0))) {
            peakRate = peakSeconds > 0 ? measurePeak(bar) : Double.NaN;
            for (BenchShape shape : shapes) {
                Map<String, PreparedAttention> prepared = new LinkedHashMap<>();
                Map<String, String> notes = new LinkedHashMap<>();
                try {
                    for (String name : contenders) {
                        bar.setExtraMessage("checking " + name + " " + shape.label());
                        Optional<String> unfit = Contenders.unfit(name, shape);
                        if (unfit.isPresent()) {
                            notes.put(name, "skipped: " + unfit.get());
                            continue;
                        }
                        try {
                            prepared.put(name, VulkanDeviceTime.attach(name, Contenders.prepare(name, shape)));
                        } catch (IllegalStateException e) {
                            mismatch = true;
                            notes.put(name, "FAILED: " + e.getMessage());
                        }
                    }
                    bar.setExtraMessage("timing " + shape.label());
                    Map<String, ContenderTiming> timed = new LinkedHashMap<>();
                    for (ContenderTiming m : timing.measure(shape, prepared)) {
                        timed.put(m.contender(), m);
                        results.add(m);
                    }
                    for (String name : contenders) {
                        rows.add(
                                timed.containsKey(name)
                                        ? row(timed.get(name), peakRate)
                                        : row(shape, name, notes.get(name)));
                    }
                } finally {
                    prepared.values().forEach(PreparedAttention::close);
                }
                bar.stepBy(contenders.length);
            }
        }

        TextTable table = new TextTable(
                TextTable.Column.left("shape"),
                TextTable.Column.left("contender"),
                TextTable.Column.right("ms"),
                TextTable.Column.right("device ms"),
                TextTable.Column.right("GFLOP/s"),
                TextTable.Column.right("% peak"),
                TextTable.Column.right("heap MiB/call"),
                TextTable.Column.left("note"));
        rows.forEach(table::add);
        out.println();
        if (peakSeconds > 0) {
            out.printf(
                    Locale.ROOT,
                    "FMA peak: %.1f GFLOP/s (independent %d-bit FMAs in registers, %d threads, same run)%n",
                    peakRate,
                    FmaPeak.lanes() * Float.SIZE,
                    Runtime.getRuntime().availableProcessors());
        }
        out.print(table.render(""));
        List<Path> files = new ArrayList<>();
        files.add(writeCsv(results));
        if (!results.isEmpty()) {
            files.addAll(BenchCharts.write(outDir, results, peakRate));
        }
        out.println();
        files.forEach(f -> out.println("wrote " + f));
        out.flush();
        return mismatch ? ErrorHandlers.FAILURE : 0;
    }

    private double measurePeak(ProgressBar bar) {
        bar.setExtraMessage("FMA peak");
        double rate = FmaPeak.measure(peakSeconds, 3);
        bar.step();
        return rate;
    }

    private static String[] row(ContenderTiming m, double peakRate) {
        return new String[] {
            m.shape().label(),
            m.contender(),
            String.format(Locale.ROOT, "%.2f", m.seconds() * 1e3),
            m.hasDeviceTime() ? String.format(Locale.ROOT, "%.2f", m.deviceSeconds() * 1e3) : "-",
            String.format(Locale.ROOT, "%.1f", m.gflops()),
            Double.isNaN(peakRate) ? "-" : String.format(Locale.ROOT, "%.0f %%", 100 * m.gflops() / peakRate),
            m.contender().equals(Contenders.ONNXRUNTIME)
                    ? "(native)"
                    : String.format(Locale.ROOT, "%.3f", m.allocatedBytes() / 1048576.0),
            ""
        };
    }

    private static String[] row(BenchShape shape, String name, String note) {
        return new String[] {shape.label(), name, "-", "-", "-", "-", "-", note};
    }

    private Path writeCsv(List<ContenderTiming> results) {
        StringBuilder csv =
                new StringBuilder("heads,seq,head_dim,causal,contender,ms,gflops,heap_bytes_per_call,device_ms\n");
        for (ContenderTiming m : results) {
            BenchShape s = m.shape();
            csv.append(String.format(
                    Locale.ROOT,
                    "%d,%d,%d,%b,%s,%.4f,%.2f,%d,%s%n",
                    s.heads(),
                    s.seq(),
                    s.headDim(),
                    s.causal(),
                    m.contender(),
                    m.seconds() * 1e3,
                    m.gflops(),
                    m.allocatedBytes(),
                    m.hasDeviceTime() ? String.format(Locale.ROOT, "%.4f", m.deviceSeconds() * 1e3) : ""));
        }
        Path file = outDir.resolve("results.csv");
        try {
            Files.createDirectories(outDir);
            Files.writeString(file, csv);
        } catch (IOException e) {
            throw new UncheckedIOException("could not write " + file + ": " + e.getMessage(), e);
        }
        return file;
    }

    private void checkArguments() {
        timing.check(this);
        sweep.check(this);
        if (!(peakSeconds >= 0) || peakSeconds > 60) {
            throw usageError("--peak-seconds must be in [0, 60], got " + peakSeconds);
        }
        List<String> known = Contenders.known();
        for (String name : contenders) {
            if (!known.contains(name)) {
                throw usageError("--contenders: no '" + name + "', known: " + String.join(", ", known));
            }
        }
    }
}
