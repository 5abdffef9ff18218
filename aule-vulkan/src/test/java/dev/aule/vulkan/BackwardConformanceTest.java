package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Gradients;
import dev.aule.spi.AttentionBackend;
import dev.aule.testing.BackwardCases;
import dev.aule.testing.BackwardCases.Case;
import dev.aule.testing.BackwardCases.Inputs;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Vulkan gradients against the float64 reference's, with the bounds the CPU backward meets (F32
 * 1e-4: each gradient sums F32 products over a sequence; F16/BF16 2e-2), on the shared random cases
 * and hand-picked corners. Gradients start as NaN, so an unwritten element fails.
 */
class BackwardConformanceTest {
    private static final double F32_BOUND = 1e-4;
    private static final double HALF_BOUND = 2e-2;

    private final VulkanBackend vulkan = VulkanTestSupport.backend();
    private final AttentionBackend reference = Backends.get("reference");

    @Test
    void randomShapesAndOptionsMatchTheReference() {
        SplittableRandom rnd = new SplittableRandom(42);
        List<String> failures = new ArrayList<>();
        for (int n = 0; n < 60; n++) {
            check(BackwardCases.random(rnd, DType.F32), rnd, F32_BOUND, failures);
        }
        assertTrue(failures.isEmpty(), failures.size() + " cases failed:\n" + String.join("\n", failures));
    }

    @Test
    void halfPrecisionStorageMatchesTheReference() {
        SplittableRandom rnd = new SplittableRandom(7);
        List<String> failures = new ArrayList<>();
        for (int n = 0; n < 16; n++) {
            check(BackwardCases.random(rnd, n % 2 == 0 ? DType.F16 : DType.BF16), rnd, HALF_BOUND, failures);
        }
        assertTrue(failures.isEmpty(), failures.size() + " cases failed:\n" + String.join("\n", failures));
    }

    /** GQA 8:1 with Dv != D, MQA, rows that see no key, windows, head dim 256. */
    @Test
    void cornersMatchTheReference() {
        SplittableRandom rnd = new SplittableRandom(3);
        AttentionOptions causal = AttentionOptions.builder().causal(true).build();
        List<Case> cases = List.of(
                new Case(DType.F32, 1, 8, 1, 40, 40, 64, 32, BackwardCases.causalAlibiSoftcap8()),
                new Case(DType.F32, 2, 4, 1, 17, 90, 80, 80, AttentionOptions.defaults()),
                new Case(DType.F32, 1, 2, 2, 67, 20, 32, 32, causal),
                new Case(DType.F32, 1, 4, 2, 1, 67, 128, 128, causal),
                new Case(
                        DType.F32,
                        1,
                        2,
                        1,
                        50,
                        35,
                        16,
                        48,
                        AttentionOptions.builder().window(0, 0).build()),
                new Case(
                        DType.F32,
                        1,
                        2,
                        1,
                        33,
                        65,
                        32,
                        32,
                        AttentionOptions.builder()
                                .causal(true)
                                .window(5, 7)
                                .scale(0.4f)
                                .build()),
                new Case(
                        DType.F32,
                        1,
                        1,
                        1,
                        9,
                        13,
                        256,
                        256,
                        AttentionOptions.builder().softcap(1.5f).build()),
                new Case(DType.F32, 1, 1, 1, 5, 7, 1, 7, AttentionOptions.defaults()));
        List<String> failures = new ArrayList<>();
        for (Case c : cases) {
            check(c, rnd, F32_BOUND, failures);
        }
        assertTrue(failures.isEmpty(), failures.size() + " cases failed:\n" + String.join("\n", failures));
    }

    /** dK/dV per key block and dQ per query tile, no atomics: the same call gives the same bits. */
    @Test
    void gradientsAreDeterministic() {
        SplittableRandom rnd = new SplittableRandom(5);
        Case c = new Case(
                DType.F32,
                1,
                4,
                2,
                70,
                70,
                64,
                64,
                AttentionOptions.builder().causal(true).build());
        Inputs in = BackwardCases.inputs(rnd, c, reference);
        Gradients a = BackwardCases.backward(vulkan, in, c.options(), DType.F32);
        Gradients b = BackwardCases.backward(vulkan, in, c.options(), DType.F32);
        assertArrayEquals(a.dq().toFloatArray(), b.dq().toFloatArray());
        assertArrayEquals(a.dk().toFloatArray(), b.dk().toFloatArray());
        assertArrayEquals(a.dv().toFloatArray(), b.dv().toFloatArray());
    }

    private void check(Case c, SplittableRandom rnd, double bound, List<String> failures) {
        Inputs in = BackwardCases.inputs(rnd, c, reference);
        Gradients expected = BackwardCases.backward(reference, in, c.options(), DType.F32);
        Gradients actual = BackwardCases.backward(vulkan, in, c.options(), c.dtype());
        double error = BackwardCases.error(actual, expected);
        if (!(error < bound)) {
            failures.add(c + " -> gradient error " + error + " (limit " + bound + ")"
                    + (Double.isInfinite(error)
                            ? " dq[0..4] "
                                    + Arrays.toString(Arrays.copyOf(actual.dq().toFloatArray(), 4))
                            : ""));
        }
    }
}
