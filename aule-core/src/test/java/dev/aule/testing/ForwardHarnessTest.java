package dev.aule.testing;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.spi.AttentionBackend;
import org.junit.jupiter.api.Test;
import org.opentest4j.AssertionFailedError;

import java.lang.foreign.ValueLayout;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The property-test harness must catch what it claims to: an element left unwritten (NaN poison),
 * a write into a gap of a strided output, a wrong value, a changed input. Each check runs a
 * deliberately broken backend (the reference plus one fault) and expects the harness to fail.
 */
class ForwardHarnessTest {
    // Strided output (PADDED has gaps), so gap writes are possible; F32 throughout.
    private static final ForwardCase CASE = new ForwardCase(
            1,
            1,
            2,
            2,
            9,
            13,
            8,
            6,
            DType.F32,
            DType.F32,
            DType.F32,
            new Layout[] {Layout.BHSD, Layout.BHSD, Layout.BHSD, Layout.PADDED},
            false,
            AttentionOptions.defaults());

    @Test
    void aCorrectBackendPasses() {
        CaseFailures failures = new CaseFailures();
        failures.check(Backends.get("reference"), CASE);
        failures.assertNone("harness cases");
    }

    @Test
    void anUnwrittenElementIsCaught() {
        assertCaught(call -> {
            float[] row = new float[call.out().headDim()];
            call.out().readRow(0, 3, 8, row, 0);
            row[5] = Float.NaN; // as if never written: the poison is NaN
            call.out().writeRow(0, 3, 8, row, 0);
        });
    }

    @Test
    void aWriteIntoAGapOfTheOutputIsCaught() {
        assertCaught(call -> {
            // Write 0 into the first element of memory that belongs to no logical element.
            boolean[] logical = Layout.logicalElements(call.out());
            for (int i = 0; i < logical.length; i++) {
                if (!logical[i]) {
                    call.out().memory().setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, 0f);
                    return;
                }
            }
            throw new IllegalStateException("the PADDED layout drew no gaps; pick another seed");
        });
    }

    @Test
    void aSlightlyWrongValueIsCaught() {
        assertCaught(call -> call.out().set(0, 0, 0, 0, call.out().get(0, 0, 0, 0) + 1e-4f));
    }

    @Test
    void aWrongLseIsCaught() {
        assertCaught(call -> call.lse().set(0, 1, 4, 0, call.lse().get(0, 1, 4, 0) * (1 + 1e-4f)));
    }

    @Test
    void aModifiedInputIsCaught() {
        assertCaught(call -> call.q().set(0, 0, 0, 0, 0.123f));
    }

    private static void assertCaught(Consumer<FaultyBackend.Call> fault) {
        AttentionBackend broken = new FaultyBackend("broken", Backends.get("reference"), fault);
        CaseFailures failures = new CaseFailures();
        failures.check(broken, CASE);
        AssertionFailedError e = assertThrows(AssertionFailedError.class, () -> failures.assertNone("harness cases"));
        assertTrue(e.getMessage().contains("seed 1"), e.getMessage());
    }
}
