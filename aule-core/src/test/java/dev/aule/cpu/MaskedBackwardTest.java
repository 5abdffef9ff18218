package dev.aule.cpu;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Gradients;
import dev.aule.mask.AttentionMask;
import dev.aule.mask.BlockMask;
import dev.aule.mask.MaskMod;
import dev.aule.mask.ScoreMod;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.BackwardInputs;
import dev.aule.testing.BackwardCases;
import dev.aule.testing.BackwardCases.Case;
import dev.aule.testing.BackwardCases.Inputs;
import dev.aule.testing.MaskCases;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static dev.aule.testing.BackwardCases.assertMatchesReference;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * CPU gradients with dense masks, biases, MaskMods, BlockMasks and differentiable ScoreMods against the
 * float64 reference's (whose own gradients with masks and ScoreMods are checked by finite differences in
 * {@code BackwardReferenceTest}). Bounds as in {@link BackwardCpuTest}.
 */
class MaskedBackwardTest {
    private static final double F32_BOUND = 1e-4;
    private static final double HALF_BOUND = 2e-2;

    private final AttentionBackend reference = Backends.get("reference");
    private final CpuBackend cpu = new CpuBackend();

    @Test
    void randomMasksMatchTheReference() {
        SplittableRandom rnd = new SplittableRandom(101);
        for (int n = 0; n < 50; n++) {
            assertMatchesReference(cpu, masked(rnd, BackwardCases.random(rnd, DType.F32)), rnd, F32_BOUND);
        }
    }

    @Test
    void halfPrecisionMasksMatchTheReference() {
        SplittableRandom rnd = new SplittableRandom(102);
        for (int n = 0; n < 12; n++) {
            assertMatchesReference(
                    cpu, masked(rnd, BackwardCases.random(rnd, n % 2 == 0 ? DType.F16 : DType.BF16)), rnd, HALF_BOUND);
        }
    }

    @Test
    void scalarPathMatchesTheReference() {
        SplittableRandom rnd = new SplittableRandom(103);
        CpuBackend scalar = new CpuBackend(new ScalarTileMath());
        for (int n = 0; n < 10; n++) {
            assertMatchesReference(scalar, masked(rnd, BackwardCases.random(rnd, DType.F32)), rnd, F32_BOUND);
        }
    }

    /** Block masks over several tiles (empty, full and partial), GQA, and rows a mask leaves empty. */
    @Test
    void blockMasksAndEmptyRowsMatchTheReference() {
        SplittableRandom rnd = new SplittableRandom(104);
        int n = 200;
        int[] docs = MaskCases.documents(rnd, n);
        MaskMod oddRowsHidden = (b, h, i, j) -> i % 2 == 0 && j <= i;
        for (MaskMod mod : new MaskMod[] {
            MaskMod.document(docs).and(MaskMod.causal()), MaskMod.prefixLm(70), MaskMod.slidingWindow(40), oddRowsHidden
        }) {
            AttentionOptions options = AttentionOptions.builder()
                    .blockMask(BlockMask.of(mod, n, n))
                    .build();
            assertMatchesReference(cpu, new Case(DType.F32, 1, 4, 2, n, n, 32, 48, options), rnd, F32_BOUND);
        }
        AttentionOptions emptyRows = AttentionOptions.builder()
                .mask(AttentionMask.of(oddRowsHidden, 1, 1, 70, 70))
                .scoreMod(ScoreMod.softcap(1.5f))
                .build();
        Case c = new Case(DType.F32, 2, 2, 1, 70, 70, 16, 16, emptyRows);
        Inputs in = BackwardCases.inputs(rnd, c, cpu);
        Gradients g = BackwardCases.backward(cpu, in, c.options(), DType.F32);
        for (int h = 0; h < 2; h++) {
            for (int x = 0; x < 16; x++) {
                assertEquals(0f, g.dq().get(1, h, 1, x), "dq of a row that sees nothing");
            }
        }
        assertMatchesReference(cpu, c, rnd, F32_BOUND);
    }

    /** Gradients with a ScoreMod that has no derivative are refused, before anything is written. */
    @Test
    void scoreModWithoutDerivativeIsRefused() {
        SplittableRandom rnd = new SplittableRandom(105);
        AttentionOptions options =
                AttentionOptions.builder().scoreMod((s, b, h, q, kv) -> 2 * s).build();
        Case c = new Case(DType.F32, 1, 2, 1, 9, 9, 16, 16, options);
        Inputs in = BackwardCases.inputs(rnd, c, cpu);
        for (AttentionBackend backend : new AttentionBackend[] {cpu, reference}) {
            Gradients g = BackwardCases.poisoned(in, DType.F32);
            IllegalArgumentException e = assertThrows(
                    IllegalArgumentException.class,
                    () -> backend.backward(
                            new BackwardInputs(in.q(), in.k(), in.v(), in.out(), in.dOut(), in.lse()), g, options));
            assertTrue(e.getMessage().startsWith("options.scoreMod"), e.getMessage());
            assertTrue(e.getMessage().contains("ScoreMod.withDerivative"), e.getMessage());
            for (float x : g.dq().toFloatArray()) {
                assertTrue(Float.isNaN(x), "nothing written");
            }
        }
    }

    private static Case masked(SplittableRandom rnd, Case c) {
        return c.withOptions(
                MaskCases.add(rnd, c.options(), c.batch(), c.queryHeads(), c.queryLen(), c.keyLen(), true));
    }
}
