package dev.aule;

import dev.aule.mask.AttentionMask;
import dev.aule.mask.BlockMask;
import dev.aule.mask.MaskMod;
import dev.aule.mask.ScoreMod;
import dev.aule.spi.AttentionShape;
import dev.aule.spi.BlockMaskTiles;
import dev.aule.spi.Capabilities;
import dev.aule.spi.Capabilities.Feature;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.foreign.MemorySegment;
import java.util.EnumSet;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * One test per rule masks and programmable scores add: each expects an {@link IllegalArgumentException}
 * whose message starts with the argument's name and states the rule, with the outputs left unwritten.
 * Runs on the backends that support masks (cpu, reference).
 */
class MaskValidationTest {
    private static final float SENTINEL = 42f;
    private static final int B = 2;
    private static final int HQ = 4;
    private static final int HKV = 2;
    private static final int SQ = 5;
    private static final int SK = 6;

    private final SplittableRandom rnd = new SplittableRandom(4);
    private final Tensor q = Tensors.random(rnd, DType.F32, B, HQ, SQ, 8);
    private final Tensor k = Tensors.random(rnd, DType.F32, B, HKV, SK, 8);
    private final Tensor v = Tensors.random(rnd, DType.F32, B, HKV, SK, 4);

    private void assertRejected(String backend, AttentionOptions options, String argument, String... fragments) {
        Tensor out = Tensor.allocate(DType.F32, B, HQ, SQ, 4);
        Tensor lse = Tensor.allocate(DType.F32, B, HQ, SQ, 1);
        out.fill(SENTINEL);
        lse.fill(SENTINEL);
        assertMessage(() -> Backends.get(backend).forward(q, k, v, out, lse, options), argument, fragments);
        for (float x : out.toFloatArray()) {
            assertEquals(SENTINEL, x, "out written although the call was rejected");
        }
        for (float x : lse.toFloatArray()) {
            assertEquals(SENTINEL, x, "lse written although the call was rejected");
        }
    }

    private static void assertMessage(Executable call, String argument, String... fragments) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().startsWith(argument), e.getMessage());
        for (String fragment : fragments) {
            assertTrue(e.getMessage().contains(fragment), "missing '" + fragment + "' in: " + e.getMessage());
        }
    }

    private static AttentionMask mask(int b, int h, int sq, int sk) {
        return AttentionMask.of(new boolean[b * h * sq * sk], b, h, sq, sk);
    }

    @ParameterizedTest
    @ValueSource(strings = {"cpu", "reference"})
    void maskShapeMustBroadcastToTheCall(String backend) {
        for (int[] bad :
                new int[][] {{3, 1, SQ, SK}, {1, 2, SQ, SK}, {1, 1, SQ + 1, SK}, {1, 1, SQ, SK - 1}, {1, HKV, SQ, SK}
                }) {
            if (bad[1] == HKV && HKV == HQ) {
                continue;
            }
            assertRejected(
                    backend,
                    AttentionOptions.builder()
                            .mask(mask(bad[0], bad[1], bad[2], bad[3]))
                            .build(),
                    "options.mask",
                    "[B or 1, Hq or 1, Sq, Sk]",
                    "[2 or 1, 4 or 1, 5, 6]");
        }
        for (int[] good : new int[][] {{1, 1, SQ, SK}, {B, 1, SQ, SK}, {1, HQ, SQ, SK}, {B, HQ, SQ, SK}}) {
            AttentionOptions options = AttentionOptions.builder()
                    .mask(mask(good[0], good[1], good[2], good[3]))
                    .build();
            assertDoesNotThrow(() ->
                    Backends.get(backend).forward(q, k, v, Tensor.allocate(DType.F32, B, HQ, SQ, 4), null, options));
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"cpu", "reference"})
    void biasShapeMustBroadcastToTheCall(String backend) {
        assertRejected(
                backend,
                AttentionOptions.builder()
                        .bias(Tensor.allocate(DType.F32, 1, 1, SQ, SK + 1))
                        .build(),
                "options.bias",
                "[B or 1, Hq or 1, Sq, Sk]",
                "[1, 1, 5, 7]");
        assertRejected(
                backend,
                AttentionOptions.builder()
                        .bias(Tensor.allocate(DType.BF16, 1, 3, SQ, SK))
                        .build(),
                "options.bias",
                "[1, 3, 5, 6]");
    }

    @ParameterizedTest
    @ValueSource(strings = {"cpu", "reference"})
    void blockMaskShapeMustMatchTheCall(String backend) {
        MaskMod all = (b, h, i, j) -> true;
        assertRejected(
                backend,
                AttentionOptions.builder()
                        .blockMask(BlockMask.of(all, SQ, SK + 16))
                        .build(),
                "options.blockMask",
                "[1, 1, 5, 22]");
        assertRejected(
                backend,
                AttentionOptions.builder()
                        .blockMask(BlockMask.of(all, 1, HKV, SQ, SK))
                        .build(),
                "options.blockMask",
                "Hq or 1");
    }

    /** An output that shares memory with the bias is refused like one overlapping an input. */
    @Test
    void outputMustNotOverlapTheBias() {
        float[] shared = new float[B * HQ * SQ * SK];
        Tensor bias = Tensor.of(MemorySegment.ofArray(shared), DType.F32, new long[] {B, HQ, SQ, SK}, new long[] {
            (long) HQ * SQ * SK, (long) SQ * SK, SK, 1
        });
        Tensor out = Tensor.of(MemorySegment.ofArray(shared), DType.F32, new long[] {B, HQ, SQ, 4}, new long[] {
            (long) HQ * SQ * SK, (long) SQ * SK, SK, 1
        });
        AttentionOptions options = AttentionOptions.builder().bias(bias).build();
        assertMessage(() -> Backends.get("cpu").forward(q, k, v, out, null, options), "out", "overlaps options.bias");
    }

    /** A backend whose capabilities lack masks refuses every mask and mod, naming the rule. */
    @Test
    void backendsWithoutMasksRefuseThem() {
        Capabilities plain = Capabilities.of(64, EnumSet.allOf(DType.class), Feature.BACKWARD);
        assertTrue(!plain.masks());
        MaskMod causal = MaskMod.causal();
        for (AttentionOptions options : new AttentionOptions[] {
            AttentionOptions.builder().mask(mask(1, 1, SQ, SK)).build(),
            AttentionOptions.builder()
                    .bias(Tensor.allocate(DType.F32, 1, 1, SQ, SK))
                    .build(),
            AttentionOptions.builder().maskMod(causal).build(),
            AttentionOptions.builder().blockMask(BlockMask.of(causal, SQ, SK)).build(),
            AttentionOptions.builder().scoreMod(ScoreMod.softcap(5f)).build()
        }) {
            assertMessage(
                    () -> AttentionShape.ofInputs(q, k, v, options, plain),
                    "options",
                    "not supported by this backend",
                    "Capabilities.masks()");
        }
        assertDoesNotThrow(() -> AttentionShape.ofInputs(q, k, v, AttentionOptions.defaults(), plain));
    }

    @Test
    void factoriesRejectBadArguments() {
        assertMessage(() -> AttentionMask.of(new boolean[5], 1, 1, 2, 3), "data", "length 5", "6");
        assertMessage(() -> AttentionMask.of(new boolean[0], 1, 0, 2, 3), "shape", ">= 1");
        assertMessage(() -> BlockMask.of(MaskMod.causal(), 0, 4), "shape", ">= 1");
        assertMessage(() -> MaskMod.slidingWindow(-1), "left", ">= 0");
        assertMessage(() -> MaskMod.prefixLm(-2), "prefixLen", ">= 0");
        assertMessage(() -> ScoreMod.softcap(0f), "cap", "> 0");
        assertMessage(() -> ScoreMod.alibi(new float[] {1f, Float.NaN}), "slopesPerQueryHead", "slope 1");
    }

    /** Options keep the last setting: a MaskMod clears a block mask, a block mask brings its MaskMod. */
    @Test
    void blockMaskAndMaskModAreOneSetting() {
        MaskMod causal = MaskMod.causal();
        BlockMask blocks = BlockMask.of(causal, SQ, SK);
        AttentionOptions withBlocks =
                AttentionOptions.builder().blockMask(blocks).build();
        assertEquals(causal, withBlocks.maskMod());
        assertEquals(blocks, withBlocks.blockMask());
        AttentionOptions plain =
                withBlocks.toBuilder().maskMod(MaskMod.prefixLm(1)).build();
        assertEquals(null, plain.blockMask());
        assertEquals(withBlocks, withBlocks.toBuilder().build());
        assertTrue(withBlocks.hasMasksOrScoreMods());
        assertTrue(!AttentionOptions.defaults().hasMasksOrScoreMods());
    }

    /** Statuses: causal 16 x 16 blocks are full below the diagonal, partial on it, empty above. */
    @Test
    void blockStatusesFollowTheMaskMod() {
        BlockMask causal = BlockMask.of(MaskMod.causal(), 40, 40);
        assertEquals(BlockMask.Status.FULL, causal.status(0, 0, 1, 0));
        assertEquals(BlockMask.Status.PARTIAL, causal.status(0, 0, 1, 1));
        assertEquals(BlockMask.Status.EMPTY, causal.status(0, 0, 0, 2));
        assertEquals(BlockMask.Status.PARTIAL, causal.status(0, 0, 2, 2)); // the cut 8 x 8 corner block
        assertEquals(40L * 41 / 2, causal.visiblePairs(0, 0));
        assertEquals(BlockMask.Status.EMPTY, BlockMaskTiles.status(causal, 0, 0, 0, 0, 15, 16, 39));
        assertEquals(BlockMask.Status.FULL, BlockMaskTiles.status(causal, 0, 0, 0, 16, 31, 0, 15));
        assertEquals(BlockMask.Status.PARTIAL, BlockMaskTiles.status(causal, 0, 0, 0, 0, 39, 0, 39));
    }
}
