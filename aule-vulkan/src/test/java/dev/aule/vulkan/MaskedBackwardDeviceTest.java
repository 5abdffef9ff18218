package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Gradients;
import dev.aule.Tensor;
import dev.aule.mask.AttentionMask;
import dev.aule.mask.BlockMask;
import dev.aule.mask.MaskMod;
import dev.aule.mask.ScoreMod;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.AttentionShape;
import dev.aule.spi.BackwardInputs;
import dev.aule.testing.BackwardCases;
import dev.aule.testing.BackwardCases.Case;
import dev.aule.testing.BackwardCases.Inputs;
import dev.aule.testing.MaskCases;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The masked backward on the device (backward_kv.comp and backward_q.comp with MASKS, inputs from DeviceMasks cut
 * for the backward's plan) against the float64 reference's dq, dk and dv: dense masks and biases with their
 * broadcasts, MaskMods with and without BlockMasks, with causal, windows, GQA, softcap and ALiBi; rows that see
 * nothing; NaN behind masks; split grids; device tensors; the ScoreMod refusal. Gradients start as NaN, so an
 * unwritten element fails.
 */
class MaskedBackwardDeviceTest {
    private static final double F32_BOUND = 1e-4;
    private static final double HALF_BOUND = 2e-2; // as BackwardConformanceTest

    private final VulkanBackend vulkan = VulkanTestSupport.backend();
    private final AttentionBackend reference = Backends.get("reference");

    @Test
    void randomMasksBiasesAndMaskModsMatchTheReference() {
        SplittableRandom rnd = new SplittableRandom(90);
        List<String> failures = new ArrayList<>();
        for (int n = 0; n < 10; n++) {
            Case c = BackwardCases.random(rnd, DType.F32);
            if (c.headDim() > 64 || c.valueDim() > 64) {
                continue; // lavapipe: the small head dims cover the mask paths; fewer variants to compile
            }
            AttentionOptions options =
                    MaskCases.add(rnd, c.options(), c.batch(), c.queryHeads(), c.queryLen(), c.keyLen(), false)
                            .toBuilder()
                            .scoreMod(null)
                            .build();
            if (!options.hasMasksOrScoreMods()) {
                options = options.toBuilder().maskMod(MaskMod.causal()).build();
            }
            check(c.withOptions(options), rnd, failures);
        }
        assertTrue(failures.isEmpty(), failures.size() + " cases failed:\n" + String.join("\n", failures));
    }

    /** Causal, GQA 2:1, softcap, ALiBi, a broadcast dense mask with hidden rows and a per-head bias with -inf. */
    @Test
    void combinationsWithCausalGqaSoftcapAlibiAndBiasMatchTheReference() {
        SplittableRandom rnd = new SplittableRandom(91);
        int b = 2;
        int hq = 4;
        int sq = 37;
        int sk = 70;
        boolean[] data = new boolean[hq * sq * sk];
        for (int x = 0; x < data.length; x++) {
            data[x] = rnd.nextInt(4) != 0;
        }
        java.util.Arrays.fill(data, 5 * sk, 6 * sk, false); // head 0, row 5: sees nothing
        Tensor bias = Tensor.allocate(DType.F32, b, 1, sq, sk);
        for (int x = 0; x < b; x++) {
            for (int i = 0; i < sq; i++) {
                for (int j = 0; j < sk; j++) {
                    bias.set(x, 0, i, j, rnd.nextInt(7) == 0 ? Float.NEGATIVE_INFINITY : (float) rnd.nextDouble());
                }
            }
        }
        AttentionOptions options = AttentionOptions.builder()
                .causal(true)
                .softcap(5f)
                .alibiSlopes(new float[] {0.5f, 0.25f, 0.125f, 0.0625f})
                .mask(AttentionMask.of(data, 1, hq, sq, sk))
                .bias(bias)
                .build();
        List<String> failures = new ArrayList<>();
        check(new Case(DType.F32, b, hq, 2, sq, sk, 32, 32, options), rnd, failures);
        AttentionOptions mod = AttentionOptions.builder()
                .window(9, 3)
                .maskMod(MaskMod.document(MaskCases.documents(rnd, sq), MaskCases.documents(rnd, sk)))
                .build();
        check(new Case(DType.F32, 1, 4, 1, sq, sk, 16, 32, mod), rnd, failures);
        assertTrue(failures.isEmpty(), failures.size() + " cases failed:\n" + String.join("\n", failures));
    }

    /** 16-bit inputs and gradients (read packed, rounded on the device) with a mask and a bias. */
    @Test
    void halfPrecisionStorageMatchesTheReference() {
        SplittableRandom rnd = new SplittableRandom(96);
        for (DType dtype : new DType[] {DType.F16, DType.BF16}) {
            AttentionOptions options = AttentionOptions.builder()
                    .causal(true)
                    .mask(MaskCases.denseMask(rnd, 1, 2, 33, 33))
                    .bias(MaskCases.bias(rnd, 1, 2, 33, 33))
                    .build();
            Case c = new Case(dtype, 1, 2, 1, 33, 33, 32, 32, options);
            Inputs in = BackwardCases.inputs(rnd, c, reference);
            Gradients expected = BackwardCases.backward(reference, in, options, DType.F32);
            Gradients actual = BackwardCases.backward(vulkan, in, options, dtype);
            double error = BackwardCases.error(actual, expected);
            assertTrue(error < HALF_BOUND, c + ": gradient error " + error);
        }
    }

    /**
     * BlockMasks with EMPTY, FULL and PARTIAL tiles in the backward's table, and the same call split into one tile
     * per submission: bit-identical, since every workgroup reads its own tiles' codes.
     */
    @Test
    void blockMasksAndSplitGridsMatchTheReference() throws Throwable {
        int s = 150; // several tiles both ways on every backward plan, the last ones partial
        SplittableRandom rnd = new SplittableRandom(92);
        MaskMod perHead = (b, h, q, kv) -> (q / 80 + kv / 80 + h) % 3 != 0;
        List<String> failures = new ArrayList<>();
        for (MaskMod mod : new MaskMod[] {MaskMod.causal(), perHead}) {
            BlockMask blockMask = mod == perHead ? BlockMask.of(mod, 1, 2, s, s) : BlockMask.of(mod, s, s);
            AttentionOptions options =
                    AttentionOptions.builder().blockMask(blockMask).build();
            Case c = new Case(DType.F32, 1, 2, 1, s, s, 16, 16, options);
            DeviceMasks masks =
                    DeviceMasks.forBackward(vulkan.device().info(), new AttentionShape(1, 2, 1, s, s, 16, 16), options);
            int[] codes = new int[3];
            for (int x = DeviceMasks.HEADER; x < masks.meta.length; x++) {
                codes[masks.meta[x]]++;
            }
            assertTrue(
                    codes[DeviceMasks.TILE_EMPTY] > 0
                            && codes[DeviceMasks.TILE_FULL] > 0
                            && codes[DeviceMasks.TILE_PARTIAL] > 0,
                    "tile codes " + java.util.Arrays.toString(codes) + " for " + blockMask);
            Inputs in = BackwardCases.inputs(rnd, c, reference);
            Gradients whole = check(c, in, failures);
            VulkanTestSupport.withProperty(AttentionKernels.MAX_TILES_PROPERTY, "1", () -> {
                Gradients split = BackwardCases.backward(vulkan, in, options, DType.F32);
                assertArrayEquals(whole.dq().toFloatArray(), split.dq().toFloatArray(), "dq split");
                assertArrayEquals(whole.dk().toFloatArray(), split.dk().toFloatArray(), "dk split");
                assertArrayEquals(whole.dv().toFloatArray(), split.dv().toFloatArray(), "dv split");
            });
        }
        assertTrue(failures.isEmpty(), failures.size() + " cases failed:\n" + String.join("\n", failures));
    }

    /**
     * NaN in keys and values the mask or a -inf bias hides from every row, and in the q and dOut of a row that sees
     * nothing: the gradients equal those of the same call with those entries finite (the hidden ones get 0).
     */
    @Test
    void nanBehindMasksNeverReachesAGradient() {
        int sq = 20;
        int sk = 30;
        int d = 16;
        boolean[] data = new boolean[sq * sk];
        Tensor bias = Tensor.allocate(DType.F32, 1, 1, sq, sk);
        for (int i = 0; i < sq; i++) {
            for (int j = 0; j < sk; j++) {
                data[i * sk + j] = j != 3 && j != 21 && i != 7;
                bias.set(0, 0, i, j, j == 12 ? Float.NEGATIVE_INFINITY : 0.25f * (j % 3));
            }
        }
        AttentionOptions options = AttentionOptions.builder()
                .mask(AttentionMask.of(data, 1, 1, sq, sk))
                .bias(bias)
                .build();
        SplittableRandom rnd = new SplittableRandom(93);
        Case c = new Case(DType.F32, 1, 2, 1, sq, sk, d, d, options);
        Inputs clean = BackwardCases.inputs(rnd, c, reference);
        Gradients expected = BackwardCases.backward(reference, clean, options, DType.F32);
        Tensor k = copy(clean.k());
        Tensor v = copy(clean.v());
        Tensor q = copy(clean.q());
        Tensor dOut = copy(clean.dOut());
        for (int x = 0; x < d; x++) {
            for (int j : new int[] {3, 12, 21}) {
                k.set(0, 0, j, x, Float.NaN);
                v.set(0, 0, j, x, Float.NaN);
            }
            for (int h = 0; h < 2; h++) {
                q.set(0, h, 7, x, Float.NaN);
                dOut.set(0, h, 7, x, Float.NaN);
            }
        }
        Inputs poisoned = new Inputs(q, k, v, clean.out(), clean.lse(), dOut);
        Gradients actual = BackwardCases.backward(vulkan, poisoned, options, DType.F32);
        double error = BackwardCases.error(actual, expected);
        assertTrue(error < F32_BOUND, "gradient error " + error);
        assertEquals(0f, actual.dk().get(0, 0, 12, 0), "dk of a key the bias hides");
        assertEquals(0f, actual.dq().get(0, 1, 7, 0), "dq of a row that sees nothing");
    }

    @Test
    void deviceTensorsTakeMasksToo() {
        SplittableRandom rnd = new SplittableRandom(94);
        int sq = 24;
        int sk = 40;
        AttentionOptions options = AttentionOptions.builder()
                .blockMask(BlockMask.of(MaskMod.causal(sk - sq), sq, sk))
                .bias(MaskCases.bias(rnd, 1, 2, sq, sk))
                .build();
        Case c = new Case(DType.F32, 1, 2, 2, sq, sk, 32, 32, options);
        Inputs in = BackwardCases.inputs(rnd, c, reference);
        Gradients expected = BackwardCases.backward(reference, in, options, DType.F32);
        try (VulkanTensor q = vulkan.upload(in.q());
                VulkanTensor k = vulkan.upload(in.k());
                VulkanTensor v = vulkan.upload(in.v());
                VulkanTensor out = vulkan.upload(in.out());
                VulkanTensor dOut = vulkan.upload(in.dOut());
                VulkanTensor lse = vulkan.upload(in.lse());
                VulkanTensor dq = vulkan.allocate(DType.F32, 1, 2, sq, 32);
                VulkanTensor dk = vulkan.allocate(DType.F32, 1, 2, sk, 32);
                VulkanTensor dv = vulkan.allocate(DType.F32, 1, 2, sk, 32)) {
            vulkan.backward(q, k, v, out, dOut, lse, dq, dk, dv, options);
            double error = BackwardCases.error(new Gradients(dq.toHost(), dk.toHost(), dv.toHost()), expected);
            assertTrue(error < F32_BOUND, "device tensors: gradient error " + error);
        }
    }

    /** A masked backward runs here and selection may pick it; one with a ScoreMod is refused, nothing written. */
    @Test
    void scoreModsStayRefusedInTheBackward() {
        AttentionOptions masked =
                AttentionOptions.builder().maskMod(MaskMod.causal()).build();
        AttentionOptions scored = masked.toBuilder()
                .scoreMod(ScoreMod.softcap(3f)) // with its derivative: only the device refuses it
                .build();
        assertTrue(vulkan.capabilities().runsMasks(masked, true));
        assertFalse(vulkan.capabilities().runsMasks(scored, true), "auto-selection would pick vulkan");
        assertFalse(vulkan.capabilities().masks(), "MASKS would let ScoreMods through validation");
        SplittableRandom rnd = new SplittableRandom(95);
        Case c = new Case(DType.F32, 1, 1, 1, 8, 8, 16, 16, masked);
        Inputs in = BackwardCases.inputs(rnd, c, reference);
        Gradients grads = BackwardCases.poisoned(in, DType.F32);
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class,
                () -> vulkan.backward(
                        new BackwardInputs(in.q(), in.k(), in.v(), in.out(), in.dOut(), in.lse()), grads, scored));
        assertTrue(e.getMessage().startsWith("options.scoreMod: ScoreMods are not supported"), e.getMessage());
        assertTrue(Float.isNaN(grads.dq().get(0, 0, 0, 0)), "written although refused");
    }

    private void check(Case c, SplittableRandom rnd, List<String> failures) {
        check(c, BackwardCases.inputs(rnd, c, reference), failures);
    }

    private Gradients check(Case c, Inputs in, List<String> failures) {
        Gradients expected = BackwardCases.backward(reference, in, c.options(), DType.F32);
        Gradients actual = BackwardCases.backward(vulkan, in, c.options(), DType.F32);
        double error = BackwardCases.error(actual, expected);
        if (!(error < F32_BOUND)) {
            failures.add(c + " -> gradient error " + error + " (limit " + F32_BOUND + ")");
        }
        return actual;
    }

    private static Tensor copy(Tensor t) {
        return Tensor.of(t.toFloatArray(), t.batch(), t.heads(), t.seqLen(), t.headDim());
    }
}
