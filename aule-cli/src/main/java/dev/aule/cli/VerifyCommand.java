package dev.aule.cli;

import dev.aule.Backends;
import dev.aule.spi.AttentionBackend;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.util.List;
import java.util.Locale;

import static dev.aule.cli.TextTable.Column.left;
import static dev.aule.cli.TextTable.Column.right;

/** {@code aule verify}: the conformance sweep of one or every backend against the float64 reference. */
@Command(
        name = "verify",
        description = {
            "Check backends against the float64 reference on the conformance cases.",
            "Outputs are poisoned with NaN first, so an unwritten element fails. Exits 1 if any case fails."
        })
final class VerifyCommand extends AuleCommand {
    @Option(
            names = "--backend",
            paramLabel = "NAME",
            description = "backend to check (default: every available backend but the reference)")
    private AttentionBackend backend;

    @Option(names = "--quick", description = "one case per feature instead of the full sweep")
    private boolean quick;

    @Mixin
    private final InputSeed seed = new InputSeed(1);

    @Override
    public Integer call() {
        PrintWriter out = out();
        List<AttentionBackend> backends = backend != null ? List.of(backend) : candidates();
        List<ConformanceCase> cases = quick ? ConformanceCases.quick() : ConformanceCases.all();
        out.printf(
                Locale.ROOT,
                "Checking %s on %d cases against the float64 reference"
                        + " (tolerance 1e-5 F32, 1e-2 F16/BF16, lse 1e-5)%n%n",
                String.join(", ", backends.stream().map(AttentionBackend::name).toList()),
                cases.size());

        TextTable table = table(cases, backends);
        out.println(table.header());
        out.println(table.rule());
        out.flush();
        CaseRunner runner = new CaseRunner(seed.value());
        int passed = 0;
        int failed = 0;
        long start = System.nanoTime();
        for (ConformanceCase c : cases) {
            for (CaseResult result : runner.run(c, backends)) {
                out.println(table.line(cells(result)));
                if (result.failure() != null) {
                    out.println("    " + result.failure());
                }
                if (result.passed()) {
                    passed++;
                } else {
                    failed++;
                }
            }
            out.flush();
        }
        out.println();
        out.printf(Locale.ROOT, "%d passed, %d failed (%.1f s)%n", passed, failed, (System.nanoTime() - start) / 1e9);
        out.flush();
        return failed == 0 ? 0 : ErrorHandlers.FAILURE;
    }

    /** Every backend that can run here except the oracle itself. */
    private static List<AttentionBackend> candidates() {
        return Backends.available().stream()
                .filter(b -> !b.name().equals("reference"))
                .toList();
    }

    /** Widths come from the cases up front so each row can print as soon as it is checked. */
    private static TextTable table(List<ConformanceCase> cases, List<AttentionBackend> backends) {
        TextTable table = new TextTable(
                left("backend"),
                left("case"),
                left("B,Hq,Hkv,Sq,Sk,D,Dv"),
                left("dtype"),
                left("layout"),
                left("options"),
                right("out error"),
                right("lse error"),
                left("result"));
        String widestError = "1.00e-05";
        for (ConformanceCase c : cases) {
            for (AttentionBackend b : backends) {
                table.fit(cells(b.name(), c, widestError, widestError, "FAIL"));
            }
        }
        return table;
    }

    private static String[] cells(CaseResult r) {
        return cells(
                r.backend(),
                r.testCase(),
                ErrorText.format(r.outError()),
                ErrorText.format(r.lseError()),
                r.passed() ? "PASS" : "FAIL");
    }

    /** One row of the table: the backend, the case, its two errors and the verdict. */
    private static String[] cells(String backend, ConformanceCase c, String outError, String lseError, String result) {
        return new String[] {
            backend,
            c.name(),
            c.shapeText(),
            c.dtype().name(),
            c.layout().label(),
            c.optionsText(),
            outError,
            lseError,
            result
        };
    }
}
