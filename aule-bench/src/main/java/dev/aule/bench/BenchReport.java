package dev.aule.bench;

import dev.aule.AttentionOptions;
import dev.aule.Visibility;
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
 * FLOP count) and its ratio to the GEMM rate measured in the same run.
 *
 * <p>Usage: {@code BenchReport [--quick] [-p name=v1,v2]... [regex...]}; the regexes select benchmarks
 * as JMH's include patterns do (default: all), {@code -p} overrides a parameter's values.
 * {@code --quick}: 2 warm-up and 3 measured iterations of 1 s.
 */
public final class BenchReport {
    private BenchReport() {
    }

    public static void main(String[] args) throws RunnerException {
        boolean quick = false;
        List<String> includes = new ArrayList<>();
        List<String[]> params = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--quick")) {
                quick = true;
            } else if (args[i].equals("-p") && i + 1 < args.length) {
                String[] kv = args[++i].split("=", 2);
                params.add(new String[] {kv[0], kv.length > 1 ? kv[1] : ""});
            } else {
                includes.add(args[i]);
            }
        }
        if (includes.isEmpty()) {
            includes.add(GemmBenchmark.class.getSimpleName());
            includes.add(ForwardBenchmark.class.getSimpleName());
            includes.add(BackwardBenchmark.class.getSimpleName());
        }
        ChainedOptionsBuilder options = new OptionsBuilder().shouldFailOnError(true);
        includes.forEach(options::include);
        params.forEach(kv -> options.param(kv[0], kv[1].split(",")));
        if (quick) {
            options.warmupIterations(2).warmupTime(TimeValue.seconds(1))
                    .measurementIterations(3).measurementTime(TimeValue.seconds(1));
        }
        Collection<RunResult> results = new Runner(options.build()).run();
        print(results);
    }

    private static void print(Collection<RunResult> results) {
        double gemmRate = results.stream()
                .filter(r -> r.getParams().getBenchmark().endsWith("sgemm"))
                .mapToDouble(r -> flops(r.getParams()) / seconds(r) / 1e9)
                .max().orElse(Double.NaN);
        double readRate = results.stream()
                .filter(r -> r.getParams().getBenchmark().endsWith("read"))
                .mapToDouble(r -> bytes(r.getParams()) / seconds(r) / 1e9)
                .max().orElse(Double.NaN);
        System.out.println();
        System.out.printf(Locale.ROOT, "%-26s %-44s %10s %9s %9s %9s %9s%n", "benchmark", "params", "ms/op",
                "GFLOP/s", "%GEMM", "GB/s", "%read");
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
            System.out.printf(Locale.ROOT, "%-26s %-44s %10.3f %9.1f %8.0f%% %9.1f %8.0f%%%n", name,
                    params.toString().trim(), sec * 1e3, gflops, 100 * gflops / gemmRate, gbs, 100 * gbs / readRate);
        }
    }

    private static double seconds(RunResult r) {
        double score = r.getPrimaryResult().getScore();
        return switch (r.getPrimaryResult().getScoreUnit()) {
            case "us/op" -> score * 1e-6;
            case "ms/op" -> score * 1e-3;
            case "s/op" -> score;
            default -> throw new IllegalStateException("unexpected unit " + r.getPrimaryResult().getScoreUnit());
        };
    }

    /** Bytes one operation of a memory-bound benchmark reads; NaN for the others. */
    static double bytes(BenchmarkParams p) {
        String method = p.getBenchmark();
        if (method.endsWith("decode") || method.endsWith("read")) {
            return DecodeBenchmark.bytes(Integer.parseInt(p.getParam("context")));
        }
        return Double.NaN;
    }

    /** FLOPs of one operation of a benchmark, from its parameters. */
    static double flops(BenchmarkParams p) {
        String method = p.getBenchmark();
        if (method.endsWith("decode") || method.endsWith("read")) {
            return Double.NaN; // memory-bound: reported in GB/s instead
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
        long pairs = Visibility.of(seq, seq, AttentionOptions.builder().causal(causal).build()).pairs();
        double forward = 4.0 * ForwardBenchmark.BATCH * ForwardBenchmark.HEADS * headDim * pairs;
        return method.endsWith("backward") ? 2.5 * forward : forward;
    }
}
