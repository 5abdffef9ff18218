package dev.aule;

import dev.aule.spi.Accuracy;
import dev.aule.spi.AttentionBackend;
import dev.aule.testing.BackwardCases.Case;
import dev.aule.testing.CaseFailures;
import dev.aule.testing.ForwardCase;
import dev.aule.testing.Forwards;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.SplittableRandom;
import java.util.function.UnaryOperator;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The CPU backend against the float64 reference on random inputs: hundreds of drawn cases (shapes,
 * GQA/MQA, dtypes, layouts, every option), then grids that guarantee every head dim and every
 * option combination appears regardless of what the draws picked.
 *
 * <p>Limits are the contract's (see {@link Accuracy#forwardTolerance}: F32 1e-5, widened only where logits are so
 * large that float rounding alone exceeds it; 16-bit outputs 1e-2). Each drawn case is rebuilt from
 * its seed by {@code ForwardCase.random(seed, halfPrecision)}; failure messages list the seeds.
 */
class ForwardPropertyTest {
    private final AttentionBackend cpu = Backends.get("cpu");

    /**
     * 500 F32 cases from seed 1000, then 250 with 16-bit storage from seed 2 000 000. The reference reads the same
     * rounded inputs and writes F32, so an F32 output must still meet the F32 limit (compute is F32 by the
     * contract); a 16-bit output gets 1e-2.
     */
    @ParameterizedTest(name = "{3}")
    @CsvSource({"1000, 500, false, F32 cases", "2000000, 250, true, F16/BF16 cases"})
    void randomCasesMatchTheReference(long firstSeed, int count, boolean halfPrecision, String what) {
        CaseFailures.assertRandomCasesPass(cpu, firstSeed, count, halfPrecision, UnaryOperator.identity(), what);
    }

    /** Every head dim, with Dv both equal and different, on shapes small enough for D = 256. */
    @Test
    void everyHeadDimMatchesTheReference() {
        CaseFailures failures = new CaseFailures();
        SplittableRandom rnd = new SplittableRandom(7);
        long seed = 0;
        for (int d : ForwardCase.HEAD_DIMS) {
            for (int dv : new int[] {d, d == 256 ? 64 : 256 - d % 7}) {
                for (int[] lengths : new int[][] {{17, 65}, {65, 17}, {1, 200}}) {
                    AttentionOptions options = ForwardCase.randomOptions(rnd, 4, lengths[1]);
                    failures.check(
                            cpu,
                            ForwardCase.of(
                                    seed++, new Case(DType.F32, 1, 4, 2, lengths[0], lengths[1], d, dv, options)));
                }
            }
        }
        failures.assertNone("head-dim cases");
    }

    /**
     * Every combination of causal, five kinds of window, softcap, ALiBi and a custom scale, with
     * Sq < Sk and Sq > Sk and GQA, so no combination is left to chance.
     */
    @Test
    void everyOptionCombinationMatchesTheReference() {
        int[][] windows = {{-1, -1}, {9, 4}, {20, -1}, {-1, 3}, {0, 0}};
        float[] slopes = {0.5f, 0.25f, 0.125f, 0.0625f};
        CaseFailures failures = new CaseFailures();
        long seed = 0;
        for (boolean causal : new boolean[] {false, true}) {
            for (int[] window : windows) {
                for (float softcap : new float[] {0f, 5f}) {
                    for (boolean alibi : new boolean[] {false, true}) {
                        for (float scale : new float[] {Float.NaN, 10f}) {
                            AttentionOptions.Builder b = AttentionOptions.builder()
                                    .causal(causal)
                                    .window(window[0], window[1])
                                    .softcap(softcap)
                                    .alibiSlopes(alibi ? slopes : null);
                            if (!Float.isNaN(scale)) {
                                b.scale(scale);
                            }
                            AttentionOptions options = b.build();
                            for (int[] lengths : new int[][] {{17, 127}, {127, 17}, {65, 65}}) {
                                failures.check(
                                        cpu,
                                        ForwardCase.of(
                                                seed++,
                                                new Case(DType.F32, 1, 4, 2, lengths[0], lengths[1], 32, 32, options)));
                            }
                        }
                    }
                }
            }
        }
        failures.assertNone("option combinations");
    }

    /**
     * The online softmax under stress: with a scale of 10 or 30, scores grow with the key index, so
     * every new key block raises the running max and rescales what came before (and, reversed, the
     * first block holds the max and every later block underflows to zero weight).
     */
    @Test
    void largeScalesWithRisingAndFallingScoresMatchTheReference() {
        SplittableRandom rnd = new SplittableRandom(99);
        int d = 64;
        int sq = 40;
        int sk = 700;
        for (boolean rising : new boolean[] {true, false}) {
            for (float scale : new float[] {10f, 30f}) {
                for (boolean causal : new boolean[] {false, true}) {
                    // Queries near one direction u; keys along u, their length ramping with j, plus noise.
                    double[] u = new double[d];
                    for (int x = 0; x < d; x++) {
                        u[x] = rnd.nextDouble() * 2 - 1;
                    }
                    Tensor q = Tensor.allocate(DType.F32, 1, 2, sq, d);
                    for (int h = 0; h < 2; h++) {
                        for (int i = 0; i < sq; i++) {
                            for (int x = 0; x < d; x++) {
                                q.set(0, h, i, x, (float) (u[x] + 0.3 * (rnd.nextDouble() - 0.5)));
                            }
                        }
                    }
                    Tensor k = Tensor.allocate(DType.F32, 1, 1, sk, d);
                    Tensor v = Tensors.random(rnd, DType.F32, 1, 1, sk, d);
                    for (int j = 0; j < sk; j++) {
                        double ramp = rising ? (double) j / sk : 1 - (double) j / sk;
                        for (int x = 0; x < d; x++) {
                            k.set(0, 0, j, x, (float) (0.25 * ramp * u[x] + 0.02 * (rnd.nextDouble() - 0.5)));
                        }
                    }
                    AttentionOptions options = AttentionOptions.builder()
                            .scale(scale)
                            .causal(causal)
                            .build();
                    String where = "rising " + rising + ", " + options;
                    Forwards.Errors errors = Forwards.againstReference(
                            cpu, (b, out, lse) -> b.forward(q, k, v, out, lse, options), 1, 2, sq, d);
                    double err = errors.out();
                    double lseErr = errors.lse();
                    double limit = Accuracy.forwardTolerance(DType.F32, q, k, options);
                    assertTrue(err < limit, () -> where + ": out error " + err + " (limit " + limit + ")");
                    assertTrue(lseErr < 1e-5, () -> where + ": lse error " + lseErr);
                }
            }
        }
    }

    /**
     * Option values at the edges of what the builder accepts: windows of Integer.MAX_VALUE (which
     * must act as unbounded, without overflowing i + offset + right), zero and negative ALiBi slopes,
     * a tiny softcap (every logit squeezed to about +-0.001), scale 0 and a large negative scale.
     */
    @Test
    void extremeOptionValuesMatchTheReference() {
        int max = Integer.MAX_VALUE;
        AttentionOptions[] options = {
            AttentionOptions.builder().window(max, max).build(),
            AttentionOptions.builder().window(max, -1).causal(true).build(),
            AttentionOptions.builder().window(-1, max).build(),
            AttentionOptions.builder()
                    .alibiSlopes(new float[] {0f, 0f, -0.05f, 0.9f})
                    .build(),
            AttentionOptions.builder().softcap(1e-3f).build(),
            AttentionOptions.builder().scale(0f).causal(true).build(),
            AttentionOptions.builder().scale(-10f).window(5, 5).build(),
        };
        checkEachOnLengths(2, options, new int[][] {{1, 200}, {65, 64}, {127, 3}}, "extreme option cases");
    }

    /**
     * A softcap far above every logit changes nothing (c tanh(s / c) ~ s), so a large cap must give
     * plain attention: the SIMD tanh must keep its relative accuracy for tiny arguments s / c.
     */
    @Test
    void largeSoftcapsMatchTheReference() {
        float[] caps = {1e4f, 1e6f, 1e30f};
        AttentionOptions[] options = new AttentionOptions[caps.length];
        for (int i = 0; i < caps.length; i++) {
            options[i] = AttentionOptions.builder().softcap(caps[i]).scale(2f).build();
        }
        checkEachOnLengths(1, options, new int[][] {{1, 200}, {65, 64}}, "large softcap cases");
    }

    /** Each of {@code options} on each pair of {Sq, Sk}: B {@code batch}, Hq 4, Hkv 2, D 32, Dv 16, seeds from 0. */
    private void checkEachOnLengths(int batch, AttentionOptions[] options, int[][] lengths, String what) {
        CaseFailures failures = new CaseFailures();
        long seed = 0;
        for (AttentionOptions option : options) {
            for (int[] s : lengths) {
                failures.check(
                        cpu, ForwardCase.of(seed++, new Case(DType.F32, batch, 4, 2, s[0], s[1], 32, 16, option)));
            }
        }
        failures.assertNone(what);
    }

    /** The CPU backend's largest head dim, 512, is accepted and computed correctly. */
    @Test
    void headDimAtTheCpuLimitMatchesTheReference() {
        CaseFailures failures = new CaseFailures();
        failures.check(
                cpu,
                ForwardCase.of(
                        5,
                        new Case(
                                DType.F32,
                                1,
                                2,
                                1,
                                33,
                                70,
                                512,
                                512,
                                AttentionOptions.builder().causal(true).build())));
        failures.check(cpu, ForwardCase.of(6, new Case(DType.F32, 1, 1, 1, 5, 9, 3, 512, AttentionOptions.defaults())));
        failures.assertNone("head dim 512 cases");
    }
}
