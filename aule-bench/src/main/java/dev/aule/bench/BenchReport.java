package dev.aule.bench;

import dev.aule.AttentionOptions;
import dev.aule.spi.Visibility;
import org.openjdk.jmh.infra.BenchmarkParams;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.RunnerException;
import org.openjdk.jmh.runner.options.ChainedOptionsBuilder;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.TimeValue;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Locale;

/**
 * Runs the JMH benchmarks in one go and prints each result with its GFLOP/s (the contract's
 * FLOP count) and its ratio to the machine's FMA peak measured in the same run ({@link PeakBenchmark}).
 *
 * <p>Usage: {@code BenchReport [--quick] [--threads N] [-p name=v1,v2]... [regex...]}; the regexes select
 * benchmarks as JMH's include patterns do (default: the FMA peak, GEMM, forward, backward), {@code -p} overrides a
 * parameter's values. {@code --quick}: 2 warm-up and 3 measured iterations of 1 s. {@code --threads N}
 * runs the cpu backend and the ONNX Runtime peer on N threads (scaling runs).
 *
 * <p>When the forward and its peers ran in the same report, a second table gives, per shape, the
 * forward's ratio to the naive attention and to ONNX Runtime, and causal GFLOP/s over non-causal.
 */
public final class BenchReport {
    /**
     * Put in front of every fork's JVM arguments: the Vector API module the cpu backend and the GEMM and
     * read yardsticks need, and native access for ONNX Runtime. Forks also inherit this JVM's own
     * arguments (see {@link BenchmarkSettings}), so the flags hold even when this JVM was started without them.
     */
    static final List<String> FORK_FLAGS =
            List.of("--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED");

    private BenchReport() {}

    public static void main(String[] args) throws RunnerException {
        boolean quick = false;
        int threads = 0;
        List<String> includes = new ArrayList<>();
        List<String[]> params = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--quick")) {
                quick = true;
            } else if (args[i].equals("--threads") && i + 1 < args.length) {
                threads = Integer.parseInt(args[++i]);
            } else if (args[i].equals("-p") && i + 1 < args.length) {
                String[] kv = args[++i].split("=", 2);
                params.add(new String[] {kv[0], kv.length > 1 ? kv[1] : ""});
            } else {
                includes.add(args[i]);
            }
        }
        if (includes.isEmpty()) {
            includes.add(PeakBenchmark.class.getSimpleName());
            includes.add(GemmBenchmark.class.getSimpleName());
            includes.add(ForwardBenchmark.class.getSimpleName());
            includes.add(BackwardBenchmark.class.getSimpleName());
        }
        ChainedOptionsBuilder options = new OptionsBuilder().shouldFailOnError(true);
        includes.forEach(options::include);
        params.forEach(kv -> options.param(kv[0], kv[1].split(",")));
        if (quick) {
            options.warmupIterations(2)
                    .warmupTime(TimeValue.seconds(1))
                    .measurementIterations(3)
                    .measurementTime(TimeValue.seconds(1));
        }
        // Prepended, not appended: options' jvmArgsAppend would replace the benchmarks' own (their heaps).
        List<String> forkFlags = new ArrayList<>(FORK_FLAGS);
        if (threads > 0) {
            forkFlags.add("-Daule.cpu.threads=" + threads);
        }
        options.jvmArgsPrepend(forkFlags.toArray(String[]::new));
        Collection<RunResult> results = new Runner(options.build()).run();
        print(results);
        printRatios(results);
    }

    private static void print(Collection<RunResult> results) {
        double peakRate = results.stream()
                .filter(r -> r.getParams().getBenchmark().endsWith("fmaPeak"))
                .mapToDouble(r -> flops(r.getParams()) / seconds(r) / 1e9)
                .max()
                .orElse(Double.NaN);
        // The read rate of the same byte count, which decides cache or memory: a batch of paged decodes
        // compares with the read of all its sequences' bytes (BandwidthBenchmark at batch x context).
        java.util.Map<Double, Double> readRate = new java.util.HashMap<>();
        results.stream()
                .filter(r -> r.getParams().getBenchmark().endsWith("read"))
                .forEach(r -> readRate.put(bytes(r.getParams()), bytes(r.getParams()) / seconds(r) / 1e9));
        printHeader(
                "%-26s %-44s %10s %9s %9s %9s %9s%n",
                "benchmark", "params", "ms/op", "GFLOP/s", "%peak", "GB/s", "%read");
        for (RunResult r : results) {
            BenchmarkParams p = r.getParams();
            String full = p.getBenchmark();
            String name = full.substring(full.lastIndexOf('.', full.lastIndexOf('.') - 1) + 1);
            double sec = seconds(r);
            double gflops = flops(p) / sec / 1e9;
            double gbs = bytes(p) / sec / 1e9;
            StringBuilder params = new StringBuilder();
            for (String key : p.getParamsKeys()) {
                params.append(key).append('=').append(p.getParam(key)).append(' ');
            }
            double read = readRate.getOrDefault(bytes(p), Double.NaN);
            System.out.printf(
                    Locale.ROOT,
                    "%-26s %-44s %10.3f %9s %9s %9s %9s%n",
                    name,
                    params.toString().trim(),
                    sec * 1e3,
                    cell("%.1f", gflops),
                    cell("%.0f%%", 100 * gflops / peakRate),
                    cell("%.1f", gbs),
                    cell("%.0f%%", 100 * gbs / read));
        }
    }

    /** Per forward shape: times the naive and ONNX Runtime peers' time, and causal over non-causal GFLOP/s. */
    private static void printRatios(Collection<RunResult> results) {
        List<RunResult> forwards = results.stream()
                .filter(r -> r.getParams().getBenchmark().endsWith(".forward"))
                .toList();
        if (forwards.isEmpty()) {
            return;
        }
        printHeader("%-34s %9s %9s %9s %15s%n", "forward shape", "GFLOP/s", "x naive", "x onnxrt", "causal/full");
        for (RunResult f : forwards) {
            BenchmarkParams p = f.getParams();
            String shape = "seq=" + p.getParam("seq") + " headDim=" + p.getParam("headDim") + " causal="
                    + p.getParam("causal");
            double sec = seconds(f);
            double naive = sameShape(results, p, "naive", p.getParam("causal"));
            double ort = sameShape(results, p, "onnxruntime", p.getParam("causal"));
            double causalRatio = Double.NaN;
            if (Boolean.parseBoolean(p.getParam("causal"))) {
                RunResult full = results.stream()
                        .filter(r ->
                                r.getParams().getBenchmark().endsWith(".forward") && same(r.getParams(), p, "false"))
                        .findFirst()
                        .orElse(null);
                if (full != null) {
                    causalRatio = (flops(p) / sec) / (flops(full.getParams()) / seconds(full));
                }
            }
            System.out.printf(
                    Locale.ROOT,
                    "%-34s %9.1f %9s %9s %15s%n",
                    shape,
                    flops(p) / sec / 1e9,
                    cell("%.2f", naive / sec),
                    cell("%.2f", ort / sec),
                    cell("%.0f%%", 100 * causalRatio));
        }
    }

    /** {@code value} in {@code format}, or "-" where it does not apply (NaN: no peer, no read, no FLOP count). */
    private static String cell(String format, double value) {
        return Double.isNaN(value) ? "-" : String.format(Locale.ROOT, format, value);
    }

    /** A blank line, then a table's column titles laid out by {@code format}. */
    private static void printHeader(String format, String... titles) {
        System.out.println();
        System.out.printf(Locale.ROOT, format, (Object[]) titles);
    }

    /** Seconds of the benchmark method {@code method} on the forward shape of {@code p} with masking {@code causal}; NaN if absent. */
    private static double sameShape(Collection<RunResult> results, BenchmarkParams p, String method, String causal) {
        return results.stream()
                .filter(r -> r.getParams().getBenchmark().endsWith("." + method) && same(r.getParams(), p, causal))
                .mapToDouble(BenchReport::seconds)
                .findFirst()
                .orElse(Double.NaN);
    }

    private static boolean same(BenchmarkParams a, BenchmarkParams b, String causal) {
        return a.getParam("seq").equals(b.getParam("seq"))
                && a.getParam("headDim").equals(b.getParam("headDim"))
                && causal.equals(a.getParam("causal"));
    }

    private static double seconds(RunResult r) {
        double score = r.getPrimaryResult().getScore();
        return switch (r.getPrimaryResult().getScoreUnit()) {
            case "us/op" -> score * 1e-6;
            case "ms/op" -> score * 1e-3;
            case "s/op" -> score;
            default ->
                throw new IllegalStateException(
                        "unexpected unit " + r.getPrimaryResult().getScoreUnit());
        };
    }

    /** Bytes one operation of a memory-bound benchmark reads; NaN for the others. */
    static double bytes(BenchmarkParams p) {
        String method = p.getBenchmark();
        if (method.contains(PagedDecodeBenchmark.class.getSimpleName())) {
            return PagedDecodeBenchmark.bytes(
                    Integer.parseInt(p.getParam("batch")),
                    Integer.parseInt(p.getParam("context")),
                    p.getParam("dtype"));
        }
        if (method.endsWith("decode") || method.endsWith("read")) {
            return sequences(p) * DecodeBenchmark.bytes(Integer.parseInt(p.getParam("context")));
        }
        return Double.NaN;
    }

    /** Sequences one operation serves: its {@code batch} parameter, 1 for benchmarks without one. */
    private static int sequences(BenchmarkParams p) {
        String batch = p.getParam("batch");
        return batch == null ? 1 : Integer.parseInt(batch);
    }

    /** FLOPs of one operation of a benchmark, from its parameters. */
    static double flops(BenchmarkParams p) {
        String method = p.getBenchmark();
        if (method.endsWith("read")) {
            return Double.NaN;
        }
        if (method.endsWith("decode")) {
            // Memory-bound for one query (compare GB/s with the read rate); with several queries the
            // products of a whole GQA group per key make it compute-bound, so GFLOP/s matter too.
            // PagedDecodeBenchmark: one query for each of `batch` sequences.
            boolean paged = method.contains(PagedDecodeBenchmark.class.getSimpleName());
            int queries = paged ? 1 : Integer.parseInt(p.getParam("queries"));
            int sequences = sequences(p);
            int context = Integer.parseInt(p.getParam("context"));
            long pairs = Visibility.of(
                            queries,
                            context,
                            AttentionOptions.builder().causal(true).build())
                    .pairs();
            return 4.0 * sequences * DecodeBenchmark.Q_HEADS * DecodeBenchmark.HEAD_DIM * pairs;
        }
        if (method.endsWith("fmaPeak")) {
            return PeakBenchmark.flops(
                    Long.parseLong(p.getParam("trips")),
                    FmaPeak.lanes(),
                    Runtime.getRuntime().availableProcessors());
        }
        if (method.endsWith("sgemm")) {
            double n = Double.parseDouble(p.getParam("n"));
            return 2 * n * n * n;
        }
        int seq = Integer.parseInt(p.getParam("seq"));
        int headDim = Integer.parseInt(p.getParam("headDim"));
        if (method.endsWith("masked")) {
            return MaskBenchmark.flops(p.getParam("mask"), seq, headDim);
        }
        boolean causal = Boolean.parseBoolean(p.getParam("causal"));
        long pairs = Visibility.of(
                        seq, seq, AttentionOptions.builder().causal(causal).build())
                .pairs();
        double forward = 4.0 * ForwardShapes.HEADS * headDim * pairs;
        return method.endsWith("backward") ? 2.5 * forward : forward;
    }
}
