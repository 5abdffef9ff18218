package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.mask.AttentionMask;
import dev.aule.mask.BlockMask;
import dev.aule.mask.MaskMod;
import dev.aule.spi.AttentionShape;
import dev.aule.spi.Visibility;
import dev.aule.testing.MaskCases;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The host side of the masked forward, without a device: bits and tile codes against the pairs evaluated one by
 * one, the BlockMask's EMPTY and FULL blocks taken without calling the MaskMod, and the buffer limits.
 */
class DeviceMasksTest {
    private static final DeviceInfo DEVICE = device(1L << 30);

    @Test
    void bitsAndTilesAreThePairsOfTheMasksInsideTheInterval() {
        SplittableRandom rnd = new SplittableRandom(21);
        for (int trial = 0; trial < 30; trial++) {
            int b = 1 + rnd.nextInt(2);
            int hq = 1 + rnd.nextInt(3);
            int sq = 1 + rnd.nextInt(150);
            int sk = 1 + rnd.nextInt(150);
            AttentionOptions.Builder builder = AttentionOptions.builder().causal(rnd.nextBoolean());
            if (rnd.nextBoolean()) {
                builder.window(rnd.nextInt(sk + 2), rnd.nextInt(3) - 1);
            }
            if (rnd.nextBoolean()) {
                builder.mask(MaskCases.denseMask(rnd, b, hq, sq, sk));
            }
            MaskMod mod = MaskCases.maskMod(rnd, sq, sk);
            switch (rnd.nextInt(3)) {
                case 0 -> builder.maskMod(mod);
                case 1 -> builder.blockMask(BlockMask.of(mod, b, hq, sq, sk));
                default -> {} // the dense mask alone, or nothing set
            }
            AttentionOptions options = builder.build();
            AttentionShape shape = new AttentionShape(b, hq, hq, sq, sk, 64, 64);
            DeviceMasks masks = DeviceMasks.of(DEVICE, shape, options);
            if (!options.hasMasksOrScoreMods()) {
                assertNull(masks);
                continue;
            }
            check(masks, shape, options, "trial " + trial + " " + options);
        }
    }

    @Test
    void blockMasksSpareTheMaskModItsEmptyAndFullBlocks() {
        AtomicLong calls = new AtomicLong();
        int s = 160;
        MaskMod causal = (b, h, q, kv) -> {
            calls.incrementAndGet();
            return kv <= q;
        };
        BlockMask blockMask = BlockMask.of(causal, s, s);
        calls.set(0);
        AttentionOptions options =
                AttentionOptions.builder().blockMask(blockMask).build();
        AttentionShape shape = new AttentionShape(1, 2, 2, s, s, 64, 64);
        DeviceMasks masks = DeviceMasks.of(DEVICE, shape, options);
        // Only the 10 diagonal 16 x 16 blocks are PARTIAL, for each of the 2 heads.
        assertEquals(2L * 10 * 16 * 16, calls.get(), "MaskMod calls");
        check(masks, shape, options, "causal BlockMask");
    }

    @Test
    void aBiasOrMaskOverTheBufferRangeIsRefusedNamingTheOption() {
        DeviceInfo small = device(1L << 20);
        AttentionShape shape = new AttentionShape(1, 4, 4, 512, 512, 64, 64);
        Tensor bias = Tensor.allocate(DType.F16, 1, 4, 512, 512); // 2 MiB as F16, 4 MiB once widened to F32
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class,
                () -> DeviceMasks.of(
                        small, shape, AttentionOptions.builder().bias(bias).build()));
        assertTrue(e.getMessage().startsWith("options.bias: 1048576 elements (4.0 MiB as F32"), e.getMessage());
        AttentionShape wide = new AttentionShape(64, 4, 4, 512, 512, 64, 64); // 8 MiB of bits
        e = assertThrows(
                IllegalArgumentException.class,
                () -> DeviceMasks.of(
                        small,
                        wide,
                        AttentionOptions.builder().maskMod(MaskMod.causal()).build()));
        assertTrue(e.getMessage().startsWith("options.maskMod: "), e.getMessage());
        AttentionOptions dense = AttentionOptions.builder()
                .mask(AttentionMask.of(new boolean[512 * 512], 1, 1, 512, 512))
                .build();
        assertTrue(DeviceMasks.of(small, wide, dense).bits.length == 512 * 16, "a broadcast mask stays one grid");
    }

    /** Every bit and tile code of {@code masks} against the pairs evaluated one at a time. */
    private static void check(DeviceMasks masks, AttentionShape shape, AttentionOptions options, String what) {
        Visibility vis = Visibility.of(shape.queryLen(), shape.keyLen(), options);
        int[] meta = masks.meta;
        int words = meta[DeviceMasks.WORDS_PER_ROW];
        TilePlan plan = masks.plan;
        int rowTiles = Math.ceilDiv(shape.queryLen(), plan.rows());
        int keyTiles = meta[DeviceMasks.KEY_TILES];
        assertEquals(Math.ceilDiv(shape.keyLen(), plan.keys()), keyTiles, what);
        for (int b = 0; b < shape.batch(); b++) {
            for (int h = 0; h < shape.queryHeads(); h++) {
                int bits = b * meta[DeviceMasks.BITS_B] + h * meta[DeviceMasks.BITS_H];
                int tiles = DeviceMasks.HEADER + b * meta[DeviceMasks.TILES_B] + h * meta[DeviceMasks.TILES_H];
                int[][] seen = new int[rowTiles * keyTiles][2]; // visible, in-interval pairs
                for (int i = 0; i < shape.queryLen(); i++) {
                    for (int j = 0; j < shape.keyLen(); j++) {
                        boolean inside = j >= vis.first(i) && j <= vis.last(i);
                        boolean expected = inside
                                && (options.mask() == null || options.mask().get(b, h, i, j))
                                && (options.maskMod() == null
                                        || options.maskMod().visible(b, h, i, j));
                        boolean bit = (masks.bits[bits + i * words + (j >>> 5)] >>> (j & 31) & 1) != 0;
                        assertEquals(expected, bit, what + ": bit of " + b + "," + h + "," + i + "," + j);
                        if (inside) {
                            int[] t = seen[i / plan.rows() * keyTiles + j / plan.keys()];
                            t[0] += expected ? 1 : 0;
                            t[1]++;
                        }
                    }
                }
                for (int t = 0; t < seen.length; t++) {
                    int code = seen[t][0] == 0
                            ? DeviceMasks.TILE_EMPTY
                            : seen[t][0] == seen[t][1] ? DeviceMasks.TILE_FULL : DeviceMasks.TILE_PARTIAL;
                    assertEquals(code, meta[tiles + t], what + ": tile " + t + " of " + b + "," + h);
                }
            }
        }
    }

    private static DeviceInfo device(long maxStorageBufferRange) {
        return new DeviceInfo(
                0,
                "test device",
                DeviceInfo.Kind.CPU,
                "1.3.0",
                8,
                32 * 1024,
                maxStorageBufferRange,
                1024,
                1024,
                new int[] {65535, 65535, 65535},
                false,
                false,
                false,
                true);
    }
}
