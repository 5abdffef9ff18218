package dev.aule.cli;

import dev.aule.bench.ContenderTiming;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.style.Styler;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.TreeMap;
import java.util.function.ToDoubleFunction;

/** The PNG charts of an {@code aule bench} sweep (XChart, rendered headless). */
final class BenchCharts {
    private static final int WIDTH = 900;
    private static final int HEIGHT = 560;
    /** Floor of the memory chart's log axis: a call that allocates nothing plots here. */
    private static final double MIN_MIB = 1.0 / 1024;

    private BenchCharts() {}

    /**
     * Writes {@code gflops-D<d>-<full|causal>.png} per head dim and masking (GFLOP/s against S per
     * contender, with the FMA peak as a line), {@code time.png} (ms against S, log-log) and
     * {@code memory.png} (Java heap allocated per call against S); returns the files written.
     */
    static List<Path> write(Path dir, List<ContenderTiming> results, double peakGflops) {
        System.setProperty("java.awt.headless", "true");
        List<Path> files = new ArrayList<>();
        Set<String> variants = new LinkedHashSet<>();
        for (ContenderTiming m : results) {
            variants.add(variant(m));
        }
        for (String variant : variants) {
            List<ContenderTiming> subset =
                    results.stream().filter(m -> variant(m).equals(variant)).toList();
            XYChart chart = chart("GFLOP/s against sequence length, " + variant.replace('-', ' '), "GFLOP/s");
            addSeries(chart, subset, ContenderTiming::gflops);
            if (peakGflops > 0) {
                double[] xs = subset.stream()
                        .mapToDouble(m -> m.shape().seq())
                        .distinct()
                        .sorted()
                        .toArray();
                double[] ys = new double[xs.length];
                java.util.Arrays.fill(ys, peakGflops);
                chart.addSeries("FMA peak (same run)", xs, ys);
            }
            chart.getStyler().setYAxisMin(0.0);
            chart.getStyler().setXAxisLogarithmic(false); // a few doublings: a linear axis keeps every tick labelled
            files.add(save(chart, dir.resolve("gflops-" + variant + ".png")));
        }
        XYChart time = chart("Time against sequence length (log-log)", "ms per forward");
        time.getStyler().setYAxisLogarithmic(true);
        for (String variant : variants) {
            List<ContenderTiming> subset =
                    results.stream().filter(m -> variant(m).equals(variant)).toList();
            addSeries(time, subset, m -> m.seconds() * 1e3, " " + variant);
        }
        files.add(save(time, dir.resolve("time.png")));
        XYChart memory = chart("Java heap allocated per forward call (log; floor 1 KiB)", "MiB per call");
        memory.getStyler().setYAxisLogarithmic(true);
        addSeries(
                memory,
                results.stream()
                        .filter(m -> !m.contender().equals("onnxruntime"))
                        .toList(),
                m -> Math.max(MIN_MIB, m.allocatedBytes() / 1048576.0));
        files.add(save(memory, dir.resolve("memory.png")));
        return files;
    }

    private static String variant(ContenderTiming m) {
        return "D" + m.shape().headDim() + "-" + (m.shape().causal() ? "causal" : "full");
    }

    private static XYChart chart(String title, String yTitle) {
        XYChart chart = new XYChartBuilder()
                .width(WIDTH)
                .height(HEIGHT)
                .title(title)
                .xAxisTitle("sequence length S")
                .yAxisTitle(yTitle)
                .build();
        chart.getStyler().setXAxisLogarithmic(true);
        chart.getStyler().setLegendPosition(Styler.LegendPosition.OutsideE);
        chart.getStyler().setXAxisDecimalPattern("#");
        return chart;
    }

    private static void addSeries(XYChart chart, List<ContenderTiming> results, ToDoubleFunction<ContenderTiming> y) {
        addSeries(chart, results, y, "");
    }

    /** One series per contender: for each S the largest value over the other shape parameters. */
    private static void addSeries(
            XYChart chart, List<ContenderTiming> results, ToDoubleFunction<ContenderTiming> y, String suffix) {
        Set<String> names = new LinkedHashSet<>();
        results.forEach(m -> names.add(m.contender()));
        for (String name : names) {
            TreeMap<Integer, Double> points = new TreeMap<>();
            for (ContenderTiming m : results) {
                if (m.contender().equals(name)) {
                    points.merge(m.shape().seq(), y.applyAsDouble(m), Math::max);
                }
            }
            double[] xs =
                    points.keySet().stream().mapToDouble(Integer::doubleValue).toArray();
            double[] ys =
                    points.values().stream().mapToDouble(Double::doubleValue).toArray();
            chart.addSeries(name + suffix, xs, ys);
        }
    }

    private static Path save(XYChart chart, Path file) {
        try {
            BitmapEncoder.saveBitmap(chart, file.toString(), BitmapEncoder.BitmapFormat.PNG);
        } catch (IOException e) {
            throw new UncheckedIOException("could not write " + file + ": " + e.getMessage(), e);
        }
        return file;
    }
}
