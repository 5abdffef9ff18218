package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.testing.CaseFailures;
import dev.aule.testing.ForwardCase;
import dev.aule.testing.Layout;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

/**
 * The vulkan forward against the float64 reference with the project's conformance harness: random
 * shapes (GQA/MQA, Sq != Sk, Dv != D, head dims 1 to 256), every option, every dtype mix and memory
 * layout, outputs poisoned with NaN, inputs checked unchanged. Limits are the contract's (F32 1e-5,
 * widened only for huge logits; 16-bit outputs 1e-2; lse 1e-5). The harness keeps shapes small
 * (lengths up to 200), which lavapipe runs in seconds.
 */
class ForwardConformanceTest {
    private final VulkanBackend vulkan = VulkanTestSupport.backend();

    @Test
    void randomF32CasesMatchTheReference() {
        checkRandomCases(1_000, 150, false, "F32 cases");
    }

    @Test
    void randomHalfPrecisionCasesMatchTheReference() {
        checkRandomCases(2_000_000, 100, true, "F16/BF16 cases");
    }

    /** Every head-dim bucket and its edges, with Dv equal and different, and rows that see no key. */
    @Test
    void everyHeadDimAndEmptyRowsMatchTheReference() {
        CaseFailures failures = new CaseFailures();
        SplittableRandom rnd = new SplittableRandom(11);
        long seed = 0;
        int[][] dims = {
            {1, 1}, {7, 33}, {32, 32}, {33, 64}, {64, 16}, {80, 80}, {128, 128}, {96, 200}, {256, 256}, {256, 64}
        };
        for (int[] d : dims) {
            AttentionOptions options = ForwardCase.randomOptions(rnd, 4, 40);
            failures.check(
                    vulkan,
                    new ForwardCase(
                            seed++,
                            1,
                            2,
                            2,
                            21,
                            40,
                            d[0],
                            d[1],
                            DType.F32,
                            DType.F32,
                            DType.F32,
                            layouts(Layout.BHSD),
                            false,
                            options));
        }
        // Sq > Sk causal: the first rows see nothing (out 0, lse -inf); a window that empties rows.
        failures.check(
                vulkan,
                new ForwardCase(
                        seed++,
                        1,
                        1,
                        4,
                        70,
                        9,
                        64,
                        64,
                        DType.F32,
                        DType.F32,
                        DType.F32,
                        layouts(Layout.PADDED),
                        true,
                        AttentionOptions.builder().causal(true).build()));
        failures.check(
                vulkan,
                new ForwardCase(
                        seed++,
                        2,
                        2,
                        1,
                        33,
                        20,
                        32,
                        48,
                        DType.BF16,
                        DType.F16,
                        DType.F32,
                        layouts(Layout.OFF_HEAP),
                        false,
                        AttentionOptions.builder().window(0, 0).softcap(5f).build()));
        failures.check(
                vulkan,
                new ForwardCase(
                        seed,
                        1,
                        1,
                        8,
                        1,
                        120,
                        128,
                        128,
                        DType.F16,
                        DType.F16,
                        DType.F16,
                        layouts(Layout.BSHD),
                        false,
                        AttentionOptions.builder()
                                .causal(true)
                                .alibiSlopes(new float[] {0.5f, 0.25f, 0.125f, 0.0625f, 0.03f, 0.02f, 0.01f, 0f})
                                .build()));
        failures.assertNone("head-dim and edge cases");
    }

    /** The harness's random cases of seeds {@code first} to {@code first + count - 1}. */
    private void checkRandomCases(long first, int count, boolean halfPrecision, String what) {
        CaseFailures failures = new CaseFailures();
        for (long seed = first; seed < first + count; seed++) {
            failures.check(vulkan, ForwardCase.random(seed, halfPrecision));
        }
        failures.assertNone(what);
    }

    private static Layout[] layouts(Layout l) {
        return new Layout[] {l, l, l, l};
    }
}
