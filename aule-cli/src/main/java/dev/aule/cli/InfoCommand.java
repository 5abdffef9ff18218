package dev.aule.cli;

import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.Availability;
import dev.aule.spi.Capabilities;
import picocli.CommandLine.Command;

import java.io.PrintWriter;
import java.util.Arrays;
import java.util.stream.Collectors;

import static dev.aule.cli.TextTable.Column.left;
import static dev.aule.cli.TextTable.Column.right;

/** {@code aule info}: what this JVM offers and which backends can run here. */
@Command(
        name = "info",
        description = "Show the Java runtime, Vector API support, every backend and which one is selected.")
final class InfoCommand extends AuleCommand {
    @Override
    public Integer call() {
        PrintWriter out = out();
        Labels labels = new Labels(out, 12);
        labels.print("aule", Main.VERSION);
        labels.print(
                "Java",
                Runtime.version() + " (" + System.getProperty("java.vendor") + "), " + System.getProperty("java.home"));
        labels.print("Vector API", VectorApi.describe());
        labels.print("Processors", Integer.toString(Runtime.getRuntime().availableProcessors()));
        out.println();
        out.println("Backends, in priority order:");
        out.print(backendTable().render("  "));
        out.println();
        int nameWidth =
                Backends.all().stream().mapToInt(b -> b.name().length()).max().orElse(0);
        Labels descriptions = new Labels(out, nameWidth + 4);
        for (AttentionBackend backend : Backends.all()) {
            descriptions.print("  " + backend.name(), backend.description());
        }
        out.println();
        printSelection(labels);
        out.flush();
        return 0;
    }

    private static TextTable backendTable() {
        TextTable table = new TextTable(
                left("name"),
                left("available"),
                right("priority"),
                right("max head dim"),
                left("dtypes"),
                left("backward"),
                left("masks"),
                left("serving"),
                left("reason"));
        for (AttentionBackend backend : Backends.all()) {
            Availability availability = backend.availability();
            Capabilities caps = backend.capabilities();
            table.add(
                    backend.name(),
                    yesNo(availability.available()),
                    Integer.toString(backend.priority()),
                    caps.maxHeadDim() == Integer.MAX_VALUE ? "unbounded" : Integer.toString(caps.maxHeadDim()),
                    dtypes(caps),
                    yesNo(caps.backward()),
                    caps.masks()
                            ? "yes"
                            : caps.backwardMasks() ? "no ScoreMods" : caps.forwardMasks() ? "forward" : "no",
                    yesNo(caps.serving()),
                    availability.reason());
        }
        return table;
    }

    private static void printSelection(Labels labels) {
        try {
            Selection selection = Selection.current();
            labels.print("Selected", selection.backend().name() + " (" + selection.reason() + ")");
            AttentionBackend serving = Backends.selected(dev.aule.spi.ServingPredicates.serving(null, 0, null));
            if (serving != selection.backend()) {
                Capabilities caps = selection.backend().capabilities();
                labels.print(
                        "Serving",
                        serving.name() + " (KvCache, PagedKvCache and paged calls on host memory: "
                                + selection.backend().name()
                                + (caps.serving()
                                        ? " computes in device memory, so it runs caches allocated on it"
                                        : " does not advertise Capabilities.serving()")
                                + ")");
            }
        } catch (RuntimeException e) {
            labels.print("Selected", "none: " + e.getMessage());
        }
        labels.print("", "override with -D" + Backends.PROPERTY + "=NAME or " + Backends.ENVIRONMENT + "=NAME");
    }

    /** In enum order, so the list reads the same every run although Capabilities holds a Set. */
    private static String dtypes(Capabilities caps) {
        return Arrays.stream(DType.values())
                .filter(caps.dtypes()::contains)
                .map(DType::name)
                .collect(Collectors.joining(" "));
    }

    private static String yesNo(boolean value) {
        return value ? "yes" : "no";
    }
}
