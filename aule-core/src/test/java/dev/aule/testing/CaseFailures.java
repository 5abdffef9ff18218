package dev.aule.testing;

import dev.aule.spi.Accuracy;
import dev.aule.spi.AttentionBackend;

import java.util.ArrayList;
import java.util.List;
import java.util.function.UnaryOperator;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * Collects the failing cases of a property test so one run reports all of them (each with its
 * seed), not just the first.
 */
public final class CaseFailures {
    private final List<String> failures = new ArrayList<>();
    private int cases;
    private int failingCases;

    /** Runs {@code c} on {@code backend} and records every way it breaks the contract. */
    public void check(AttentionBackend backend, ForwardCase c) {
        cases++;
        int before = failures.size();
        record(backend, c);
        if (failures.size() > before) {
            failingCases++;
        }
    }

    /**
     * Checks the drawn cases {@code ForwardCase.random(seed, halfPrecision)} of seeds {@code [firstSeed, firstSeed +
     * count)} on {@code backend}, each made ready by {@code prepare}.
     */
    public void checkRandom(
            AttentionBackend backend,
            long firstSeed,
            int count,
            boolean halfPrecision,
            UnaryOperator<ForwardCase> prepare) {
        for (long seed = firstSeed; seed < firstSeed + count; seed++) {
            check(backend, prepare.apply(ForwardCase.random(seed, halfPrecision)));
        }
    }

    /**
     * Checks the drawn cases of seeds {@code [firstSeed, firstSeed + count)} as {@link #checkRandom} does and fails
     * listing every failing one, as {@code what}.
     */
    public static void assertRandomCasesPass(
            AttentionBackend backend,
            long firstSeed,
            int count,
            boolean halfPrecision,
            UnaryOperator<ForwardCase> prepare,
            String what) {
        CaseFailures failures = new CaseFailures();
        failures.checkRandom(backend, firstSeed, count, halfPrecision, prepare);
        failures.assertNone(what);
    }

    private void record(AttentionBackend backend, ForwardCase c) {
        ForwardCase.Outcome o;
        try {
            o = c.check(backend);
        } catch (RuntimeException e) {
            failures.add(c + " -> threw " + e);
            return;
        }
        if (!Accuracy.within(o.outError(), o.outTolerance())) {
            failures.add(c + " -> out error " + o.outError() + " (limit " + o.outTolerance() + ")");
        }
        if (!Accuracy.within(o.lseError(), Accuracy.LSE_TOLERANCE)) {
            failures.add(c + " -> lse error " + o.lseError() + " (limit " + Accuracy.LSE_TOLERANCE + ")");
        }
        if (o.outGapWritten() >= 0) {
            failures.add(c + " -> wrote outside the output view, at byte " + o.outGapWritten());
        }
        if (!o.inputsUnchanged()) {
            failures.add(c + " -> modified an input");
        }
    }

    /** Fails listing every failing case, or passes. */
    public void assertNone(String what) {
        if (!failures.isEmpty()) {
            fail(failingCases + " of " + cases + " " + what
                    + " failed (a drawn case is rebuilt by ForwardCase.random(seed, halfPrecision)):\n  "
                    + String.join("\n  ", failures.subList(0, Math.min(20, failures.size()))));
        }
    }
}
