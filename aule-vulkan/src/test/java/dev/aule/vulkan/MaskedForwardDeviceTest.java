package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.mask.AttentionMask;
import dev.aule.mask.BlockMask;
import dev.aule.mask.MaskMod;
import dev.aule.mask.ScoreMod;
import dev.aule.spi.Accuracy;
import dev.aule.testing.CaseFailures;
import dev.aule.testing.ForwardCase;
import dev.aule.testing.Forwards;
import dev.aule.testing.MaskCases;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The masked forward on the device (forward.comp with MASKS, inputs from DeviceMasks) against the float64
 * reference: dense masks and biases with their broadcasts, MaskMods with and without BlockMasks, combined with
 * causal, windows, GQA, softcap and ALiBi from the harness's random cases; rows that see nothing; the
 * refusals (ScoreMods, a mask of the wrong shape).
 */
class MaskedForwardDeviceTest {
    private final VulkanBackend vulkan = VulkanTestSupport.backend();

    /**
     * A few random cases on the masked blocked kernel (each new shape compiles a blocked variant, which takes
     * lavapipe seconds); the many on the plain kernel below, and the fixed cases, cover the mask semantics.
     */
    @Test
    void randomMasksBiasesAndMaskModsMatchTheReference() {
        CaseFailures failures = new CaseFailures();
        for (long seed = 70_000; seed < 70_004; seed++) {
            failures.check(vulkan, masked(ForwardCase.random(seed, false)));
        }
        failures.assertNone("masked cases (the masked blocked kernel where its tile fits)");
    }

    @Test
    void thePlainMaskedKernelMatchesTheReference() throws Throwable {
        VulkanTestSupport.withProperty(AttentionKernels.KERNEL_PROPERTY, "forward", () -> {
            CaseFailures failures = new CaseFailures();
            for (long seed = 71_000; seed < 71_020; seed++) {
                ForwardCase c = masked(ForwardCase.random(seed, seed % 4 == 0));
                assertEquals(
                        Kernel.FORWARD_MASKED,
                        MaskedForward.choose(vulkan.device().info(), shapeOf(c)).kernel());
                failures.check(vulkan, c);
            }
            failures.assertNone("masked cases on forward.comp");
        });
    }

    private static dev.aule.spi.AttentionShape shapeOf(ForwardCase c) {
        return new dev.aule.spi.AttentionShape(
                c.batch(), c.queryHeads(), c.kvHeads(), c.queryLen(), c.keyLen(), c.headDim(), c.valueDim());
    }

    @Test
    void blockMasksSkipEmptyTilesAndMatchTheReference() {
        int s = 150; // several query tiles and key tiles on every plan, the last ones partial
        SplittableRandom rnd = new SplittableRandom(11);
        // hides 80 x 80 squares, shifted per head, with PARTIAL 16 x 16 blocks along their edges
        MaskMod perHead = (b, h, q, kv) -> (q / 80 + kv / 80 + h) % 3 != 0;
        MaskMod[] mods = {MaskMod.causal(), MaskMod.slidingWindow(40), perHead};
        for (MaskMod mod : mods) {
            BlockMask blockMask = mod == perHead ? BlockMask.of(mod, 1, 4, s, s) : BlockMask.of(mod, s, s);
            AttentionOptions options =
                    AttentionOptions.builder().blockMask(blockMask).build();
            check(rnd, 1, 2, 2, s, s, 32, options, "BlockMask " + blockMask);
            DeviceMasks masks = DeviceMasks.of(
                    vulkan.device().info(), new dev.aule.spi.AttentionShape(1, 4, 2, s, s, 32, 32), options);
            int[] codes = tileCodes(masks);
            assertTrue(codes[DeviceMasks.TILE_EMPTY] > 0, "no empty tile for " + blockMask);
            // Causal tiles below the diagonal are full on every plan; narrow windows and 16 x 16 patterns need not be.
            assertTrue(mod != mods[0] || codes[DeviceMasks.TILE_FULL] > 0, "no full tile for " + blockMask);
            assertTrue(codes[DeviceMasks.TILE_PARTIAL] > 0, "no partial tile for " + blockMask);
        }
    }

    /** A grid split over submissions (one query tile each): every part reads its own tiles' codes. */
    @Test
    void splitGridsReadTheirOwnTiles() throws Throwable {
        int s = 150;
        SplittableRandom rnd = new SplittableRandom(18);
        AttentionOptions options = AttentionOptions.builder()
                .blockMask(BlockMask.of(MaskMod.slidingWindow(40), s, s))
                .bias(MaskCases.bias(rnd, 1, 2, s, s))
                .build();
        VulkanTestSupport.withProperty(AttentionKernels.MAX_TILES_PROPERTY, "1", () -> {
            check(rnd, 1, 2, 1, s, s, 32, options, "split grid, blocked");
            VulkanTestSupport.withProperty(
                    AttentionKernels.KERNEL_PROPERTY,
                    "forward",
                    () -> check(rnd, 1, 2, 1, s, s, 32, options, "split grid, plain"));
        });
    }

    @Test
    void combinationsWithCausalGqaSoftcapAlibiAndBiasMatchTheReference() {
        SplittableRandom rnd = new SplittableRandom(12);
        int b = 2;
        int hq = 4;
        int sq = 37;
        int sk = 70;
        AttentionOptions options = AttentionOptions.builder()
                .causal(true)
                .softcap(5f)
                .alibiSlopes(new float[] {0.5f, 0.25f, 0.125f, 0.0625f})
                .mask(MaskCases.denseMask(rnd, b, hq, sq, sk))
                .bias(MaskCases.bias(rnd, b, hq, sq, sk))
                .maskMod(MaskMod.document(MaskCases.documents(rnd, sq), MaskCases.documents(rnd, sk)))
                .build();
        check(rnd, b, 2, 2, sq, sk, 48, options, "causal GQA softcap ALiBi mask bias MaskMod");
        AttentionOptions windowed =
                options.toBuilder().causal(false).window(9, 3).build();
        check(rnd, b, 1, 4, sq, sk, 64, windowed, "window MQA softcap ALiBi mask bias MaskMod");
        // sink logits after the masked kernel, as after every other forward kernel
        AttentionOptions sinks =
                options.toBuilder().sinks(new float[] {0.5f, -1f, 2f, 0f}).build();
        check(rnd, b, 2, 2, sq, sk, 48, sinks, "causal GQA softcap ALiBi mask bias MaskMod sinks");
    }

    @Test
    void rowsThatSeeNothingGiveZeroAndMinusInfinity() {
        int sq = 20;
        int sk = 33;
        boolean[] data = new boolean[sq * sk];
        for (int i = 0; i < sq; i++) {
            for (int j = 0; j < sk; j++) {
                data[i * sk + j] = i % 3 != 0 && (i + j) % 2 == 0; // every third row sees nothing
            }
        }
        Tensor bias = Tensor.allocate(DType.F32, 1, 1, sq, sk);
        for (int j = 0; j < sk; j++) {
            bias.set(0, 0, 1, j, Float.NEGATIVE_INFINITY); // row 1: hidden by the bias alone
        }
        AttentionOptions options = AttentionOptions.builder()
                .mask(AttentionMask.of(data, 1, 1, sq, sk))
                .bias(bias)
                .build();
        SplittableRandom rnd = new SplittableRandom(13);
        Tensor q = Tensors.random(rnd, DType.F32, 1, 2, sq, 16);
        Tensor k = Tensors.random(rnd, DType.F32, 1, 2, sk, 16);
        Tensor v = Tensors.random(rnd, DType.F32, 1, 2, sk, 16);
        Tensor out = Tensor.allocate(DType.F32, 1, 2, sq, 16);
        Tensor lse = Tensor.allocate(DType.F32, 1, 2, sq, 1);
        out.fill(Float.NaN);
        lse.fill(Float.NaN);
        vulkan.forward(q, k, v, out, lse, options);
        for (int h = 0; h < 2; h++) {
            for (int i = 0; i < sq; i++) {
                boolean empty = i % 3 == 0 || i == 1;
                float l = lse.get(0, h, i, 0);
                assertEquals(empty, l == Float.NEGATIVE_INFINITY, "lse of row " + i + ": " + l);
                for (int d = 0; d < 16 && empty; d++) {
                    assertEquals(0f, out.get(0, h, i, d), "out of empty row " + i);
                }
                assertFalse(Float.isNaN(l) || Float.isNaN(out.get(0, h, i, 0)), "row " + i);
            }
        }
        check(rnd, 1, 2, 1, sq, sk, 16, options, "empty rows");
    }

    /** A key hidden by the mask or a -inf bias inside the interval never reaches a row, NaN keys and values included. */
    @Test
    void nanKeysAndValuesThatTheMasksHideStayOut() throws Throwable {
        int sq = 40;
        int sk = 50;
        boolean[] data = new boolean[sq * sk];
        Tensor bias = Tensor.allocate(DType.F32, 1, 1, sq, sk);
        for (int i = 0; i < sq; i++) {
            for (int j = 0; j < sk; j++) {
                data[i * sk + j] = j != 3 && j != 30;
                bias.set(0, 0, i, j, j == 17 ? Float.NEGATIVE_INFINITY : 0.25f * (j % 3));
            }
        }
        AttentionOptions options = AttentionOptions.builder()
                .mask(AttentionMask.of(data, 1, 1, sq, sk))
                .bias(bias)
                .build();
        SplittableRandom rnd = new SplittableRandom(17);
        Tensor q = Tensors.random(rnd, DType.F32, 1, 2, sq, 64);
        Tensor k = Tensors.random(rnd, DType.F32, 1, 2, sk, 64);
        Tensor v = Tensors.random(rnd, DType.F32, 1, 2, sk, 64);
        for (int h = 0; h < 2; h++) {
            for (int d = 0; d < 64; d++) {
                for (int j : new int[] {3, 17, 30}) {
                    k.set(0, h, j, d, Float.NaN);
                    v.set(0, h, j, d, Float.NaN);
                }
            }
        }
        for (String kernel : new String[] {"auto", "forward"}) {
            VulkanTestSupport.withProperty(AttentionKernels.KERNEL_PROPERTY, kernel, () -> {
                Forwards.Errors errors = Forwards.againstReference(
                        vulkan, (backend, out, lse) -> backend.forward(q, k, v, out, lse, options), 1, 2, sq, 64);
                assertTrue(Accuracy.within(errors.out(), Accuracy.F32_TOLERANCE), kernel + ": out " + errors.out());
                assertTrue(Accuracy.within(errors.lse(), Accuracy.LSE_TOLERANCE), kernel + ": lse " + errors.lse());
            });
        }
    }

    @Test
    void deviceTensorsTakeMasksToo() {
        SplittableRandom rnd = new SplittableRandom(14);
        int sq = 24;
        int sk = 40;
        AttentionOptions options = AttentionOptions.builder()
                .blockMask(BlockMask.of(MaskMod.causal(sk - sq), sq, sk))
                .bias(MaskCases.bias(rnd, 1, 2, sq, sk))
                .build();
        Tensor q = Tensors.random(rnd, DType.F32, 1, 2, sq, 32);
        Tensor k = Tensors.random(rnd, DType.F32, 1, 2, sk, 32);
        Tensor v = Tensors.random(rnd, DType.F32, 1, 2, sk, 32);
        Tensor expected = Tensor.allocate(DType.F32, 1, 2, sq, 32);
        Backends.get("reference").forward(q, k, v, expected, null, options);
        try (VulkanTensor dq = vulkan.upload(q);
                VulkanTensor dk = vulkan.upload(k);
                VulkanTensor dv = vulkan.upload(v);
                VulkanTensor dOut = vulkan.allocate(DType.F32, 1, 2, sq, 32)) {
            vulkan.forward(dq, dk, dv, dOut, null, options);
            double error = Accuracy.relativeError(dOut.toHost(), expected);
            assertTrue(Accuracy.within(error, Accuracy.F32_TOLERANCE), "device tensors: error " + error);
        }
    }

    @Test
    void scoreModsAreRefusedWithTheReason() {
        SplittableRandom rnd = new SplittableRandom(15);
        Tensor q = Tensors.random(rnd, DType.F32, 1, 1, 8, 16);
        Tensor k = Tensors.random(rnd, DType.F32, 1, 1, 8, 16);
        Tensor v = Tensors.random(rnd, DType.F32, 1, 1, 8, 16);
        Tensor out = Tensor.allocate(DType.F32, 1, 1, 8, 16);
        out.fill(7f);
        AttentionOptions withMod =
                AttentionOptions.builder().scoreMod(ScoreMod.softcap(3f)).build();
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> vulkan.forward(q, k, v, out, null, withMod));
        assertTrue(e.getMessage().startsWith("options.scoreMod: ScoreMods are not supported"), e.getMessage());
        assertEquals(7f, out.get(0, 0, 0, 0), "written although refused");
        assertFalse(vulkan.capabilities().runsMasks(withMod, false), "auto-selection would pick vulkan");

        AttentionOptions masked =
                AttentionOptions.builder().maskMod(MaskMod.causal()).build();
        assertTrue(vulkan.capabilities().runsMasks(masked, false));
        // The masked backward runs here too (MaskedBackwardDeviceTest), ScoreMods there stay refused.
        assertTrue(vulkan.capabilities().runsMasks(masked, true));
    }

    @Test
    void aMaskOfTheWrongShapeNamesTheArgument() {
        SplittableRandom rnd = new SplittableRandom(16);
        Tensor q = Tensors.random(rnd, DType.F32, 1, 2, 8, 16);
        Tensor k = Tensors.random(rnd, DType.F32, 1, 2, 9, 16);
        Tensor v = Tensors.random(rnd, DType.F32, 1, 2, 9, 16);
        Tensor out = Tensor.allocate(DType.F32, 1, 2, 8, 16);
        AttentionOptions wrongMask = AttentionOptions.builder()
                .mask(AttentionMask.of(new boolean[3 * 8 * 9], 1, 3, 8, 9))
                .build();
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> vulkan.forward(q, k, v, out, null, wrongMask));
        assertTrue(e.getMessage().startsWith("options.mask: shape [1, 3, 8, 9]"), e.getMessage());
        AttentionOptions wrongBias = AttentionOptions.builder()
                .bias(Tensor.allocate(DType.F32, 1, 1, 8, 8))
                .build();
        e = assertThrows(IllegalArgumentException.class, () -> vulkan.forward(q, k, v, out, null, wrongBias));
        assertTrue(e.getMessage().startsWith("options.bias: shape"), e.getMessage());
    }

    /** Out and lse of one masked call against the reference, F32 inputs, Dv = D. */
    private void check(
            SplittableRandom rnd,
            int b,
            int hkv,
            int group,
            int sq,
            int sk,
            int d,
            AttentionOptions options,
            String what) {
        int hq = hkv * group;
        Tensor q = Tensors.random(rnd, DType.F32, b, hq, sq, d);
        Tensor k = Tensors.random(rnd, DType.F32, b, hkv, sk, d);
        Tensor v = Tensors.random(rnd, DType.F32, b, hkv, sk, d);
        Forwards.Errors errors = Forwards.againstReference(
                vulkan, (backend, out, lse) -> backend.forward(q, k, v, out, lse, options), b, hq, sq, d);
        double tolerance = Accuracy.forwardTolerance(DType.F32, q, k, options);
        assertTrue(Accuracy.within(errors.out(), tolerance), what + ": out error " + errors.out());
        assertTrue(Accuracy.within(errors.lse(), Accuracy.LSE_TOLERANCE), what + ": lse error " + errors.lse());
    }

    /** How many tiles of each code the table holds. */
    private static int[] tileCodes(DeviceMasks masks) {
        int[] counts = new int[3];
        for (int x = DeviceMasks.HEADER; x < masks.meta.length; x++) {
            counts[masks.meta[x]]++;
        }
        return counts;
    }

    /** The case with random masks, biases and MaskMods added; no ScoreMod (refused on this backend). */
    private static ForwardCase masked(ForwardCase c) {
        SplittableRandom rnd = new SplittableRandom(c.seed() * 31 + 7);
        AttentionOptions options =
                MaskCases.add(rnd, c.options(), c.batch(), c.queryHeads(), c.queryLen(), c.keyLen(), false).toBuilder()
                        .scoreMod(null)
                        .build();
        if (!options.hasMasksOrScoreMods()) {
            options = options.toBuilder().maskMod(MaskMod.causal()).build();
        }
        return new ForwardCase(
                c.seed(),
                c.batch(),
                c.kvHeads(),
                c.group(),
                c.queryLen(),
                c.keyLen(),
                c.headDim(),
                c.valueDim(),
                c.qType(),
                c.kvType(),
                c.outType(),
                c.layouts(),
                c.stridedLse(),
                options);
    }
}
