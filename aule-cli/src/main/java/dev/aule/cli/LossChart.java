package dev.aule.cli;

import dev.aule.examples.TrainLm;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.style.Styler;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.List;

/** The PNG loss curve of an {@code aule train-lm} run (XChart, rendered headless, as the bench charts). */
final class LossChart {
    private LossChart() {}

    /** Writes training and validation loss against the step to {@code file}, a PNG. */
    static void write(Path file, TrainLm.History history, String title) {
        System.setProperty("java.awt.headless", "true");
        XYChart chart = new XYChartBuilder()
                .width(800)
                .height(480)
                .title(title)
                .xAxisTitle("AdamW step")
                .yAxisTitle("cross-entropy (nats per character)")
                .build();
        chart.getStyler().setLegendPosition(Styler.LegendPosition.InsideNE);
        chart.getStyler().setXAxisDecimalPattern("#");
        List<TrainLm.Point> trained =
                history.points().stream().filter(p -> p.step() > 0).toList();
        if (!trained.isEmpty()) {
            chart.addSeries(
                    "train (mean since the last evaluation)",
                    trained.stream().mapToDouble(TrainLm.Point::step).toArray(),
                    trained.stream().mapToDouble(TrainLm.Point::trainLoss).toArray());
        }
        chart.addSeries(
                "validation (held-out text)",
                history.points().stream().mapToDouble(TrainLm.Point::step).toArray(),
                history.points().stream()
                        .mapToDouble(TrainLm.Point::validationLoss)
                        .toArray());
        try {
            BitmapEncoder.saveBitmap(chart, file.toString(), BitmapEncoder.BitmapFormat.PNG);
        } catch (IOException e) {
            throw new UncheckedIOException("could not write " + file + ": " + e.getMessage(), e);
        }
    }
}
