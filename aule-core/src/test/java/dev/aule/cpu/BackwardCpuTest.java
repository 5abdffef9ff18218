package dev.aule.cpu;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.testing.BackwardCases;
import dev.aule.testing.BackwardCases.Case;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static dev.aule.testing.BackwardCases.assertMatchesReference;

/**
 * CPU gradients against the float64 reference's.
 *
 * <p>F32 bound 1e-4, ten times the forward's: each gradient is a sum of F32 products over a whole
 * sequence (dK, dV over every query row of the group, dQ over every key), and {@code ds = p (dp - delta)}
 * subtracts two nearly equal F32 numbers when a row's attention is peaked; measured errors sit near 1e-6
 * with room for longer sums. F16/BF16 bound 2e-2: inputs, out and gradients are rounded to 8 or 11
 * significant bits and delta uses the rounded out.
 */
class BackwardCpuTest {
    private static final double F32_BOUND = 1e-4;
    private static final double HALF_BOUND = 2e-2;

    @Test
    void randomShapesAndOptionsMatchTheReference() {
        SplittableRandom rnd = new SplittableRandom(42);
        CpuBackend cpu = new CpuBackend();
        for (int n = 0; n < 60; n++) {
            assertMatchesReference(cpu, BackwardCases.random(rnd, DType.F32), rnd, F32_BOUND);
        }
    }

    @Test
    void halfPrecisionStorageMatchesTheReference() {
        SplittableRandom rnd = new SplittableRandom(7);
        CpuBackend cpu = new CpuBackend();
        for (int n = 0; n < 16; n++) {
            assertMatchesReference(
                    cpu, BackwardCases.random(rnd, n % 2 == 0 ? DType.F16 : DType.BF16), rnd, HALF_BOUND);
        }
    }

    /** The hand-picked corners: GQA 8:1, MQA, Sq above and below Sk, rows that see nothing, every option. */
    @Test
    void cornersMatchTheReference() {
        SplittableRandom rnd = new SplittableRandom(3);
        CpuBackend cpu = new CpuBackend();
        List<Case> cases = new ArrayList<>();
        AttentionOptions causal = AttentionOptions.builder().causal(true).build();
        // GQA 8:1 with Dv != D, ALiBi and softcap; MQA with a long key side.
        cases.add(new Case(DType.F32, 1, 8, 1, 130, 130, 64, 32, BackwardCases.causalAlibiSoftcap8()));
        cases.add(new Case(DType.F32, 2, 4, 1, 17, 200, 80, 80, AttentionOptions.defaults()));
        // Sq > Sk causal: the top Sq - Sk rows see no key (lse = -inf) and must contribute nothing.
        cases.add(new Case(DType.F32, 1, 2, 2, 127, 40, 32, 32, causal));
        cases.add(new Case(DType.F32, 1, 2, 1, 3, 1, 16, 16, causal));
        // Decode-like: one query against many keys; and one key.
        cases.add(new Case(DType.F32, 1, 4, 2, 1, 127, 128, 128, causal));
        cases.add(new Case(DType.F32, 1, 1, 1, 1, 1, 16, 16, AttentionOptions.defaults()));
        // Windows that leave rows empty (right bound below the diagonal for the first rows), and a tiny band.
        cases.add(new Case(
                DType.F32,
                1,
                2,
                2,
                65,
                65,
                64,
                64,
                AttentionOptions.builder().window(3, -1).build()));
        cases.add(new Case(
                DType.F32,
                1,
                2,
                1,
                100,
                70,
                16,
                48,
                AttentionOptions.builder().window(0, 0).build()));
        cases.add(new Case(
                DType.F32,
                1,
                2,
                1,
                64,
                128,
                32,
                32,
                AttentionOptions.builder().causal(true).window(5, 7).scale(0.4f).build()));
        // Whole tiles, every pair visible (the unmasked path), custom scale.
        cases.add(new Case(
                DType.F32,
                1,
                2,
                2,
                128,
                192,
                64,
                64,
                AttentionOptions.builder().scale(0.3f).build()));
        for (Case c : cases) {
            assertMatchesReference(cpu, c, rnd, F32_BOUND);
        }
    }

    /** The scalar path (no jdk.incubator.vector) computes the same gradients. */
    @Test
    void scalarPathMatchesTheReference() {
        SplittableRandom rnd = new SplittableRandom(11);
        CpuBackend scalar = new CpuBackend(new ScalarTileMath());
        for (int n = 0; n < 12; n++) {
            assertMatchesReference(scalar, BackwardCases.random(rnd, DType.F32), rnd, F32_BOUND);
        }
        assertMatchesReference(
                scalar,
                new Case(
                        DType.F32,
                        1,
                        4,
                        1,
                        130,
                        70,
                        80,
                        48,
                        AttentionOptions.builder()
                                .causal(true)
                                .softcap(1.5f)
                                .alibiSlopes(new float[] {0.1f, 0.2f, 0.3f, 0.4f})
                                .build()),
                rnd,
                F32_BOUND);
    }
}
