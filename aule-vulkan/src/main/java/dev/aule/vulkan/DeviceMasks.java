package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.Tensor;
import dev.aule.mask.AttentionMask;
import dev.aule.mask.BlockMask;
import dev.aule.mask.MaskMod;
import dev.aule.spi.AttentionShape;
import dev.aule.spi.Visibility;

/**
 * A call's dense mask, MaskMod (with or without its BlockMask) and additive bias, evaluated on the host into
 * what the masked forward ({@link Kernel#FORWARD_MASKED}) and backward ({@link MaskedBackward}) read:
 * visibility bits, an F32 bias and a table of the kernel's tiles. Built before anything is put on the device, so a MaskMod that throws or a mask over the
 * device's buffer limits fails the call with nothing written.
 */
/*
 * Maintainer invariants (forward.comp and the backward kernels under MASKS read these; ShaderConstantsTest compares
 * the constants):
 * - bits: one bit per (b, h, i, j) of the intersection of the dense mask and the MaskMod, rows of
 *   wordsPerRow = ceil(Sk / 32) words, bit j & 31 of word j / 32; extents [B or 1, Hq or 1, Sq]: 1 only when
 *   nothing set varies along it (a MaskMod is evaluated at every batch entry and query head, exactly, since
 *   nothing says it ignores them). Bits outside a row's causal/window interval are 0; only pairs inside it
 *   are evaluated, as on cpu.
 * - a BlockMask is trusted: its EMPTY blocks are 0 and its FULL blocks are the dense mask alone, without
 *   calling the MaskMod; PARTIAL blocks ask the MaskMod at every pair.
 * - tiles: per (b, h) of the bits, query tile of plan.rows() rows and key tile of plan.keys() keys (the
 *   kernel aligns key blocks to plan.keys()): EMPTY when no pair of the tile inside the interval is visible,
 *   FULL when every one is, else PARTIAL. Derived from the bits, so exact: a tile whose BlockMask blocks are
 *   all EMPTY (FULL) is EMPTY (FULL), and a tile of PARTIAL blocks whose pairs happen to be all visible is
 *   FULL too. Without bits (a bias alone) every tile is FULL.
 * - the bias is widened to F32, extents [B or 1, Hq or 1, Sq, Sk] as the caller's tensor broadcasts.
 */
final class DeviceMasks {
    // Header words of the meta buffer (forward.comp's META_*), then the tile codes from HEADER on.
    static final int HAS_BITS = 0;
    static final int BITS_B = 1;
    static final int BITS_H = 2;
    static final int WORDS_PER_ROW = 3;
    static final int HAS_BIAS = 4;
    static final int BIAS_B = 5;
    static final int BIAS_H = 6;
    static final int TILES_B = 7;
    static final int TILES_H = 8;
    static final int KEY_TILES = 9;
    static final int HEADER = 16;
    // Tile codes (forward.comp's TILE_*).
    static final int TILE_EMPTY = 0;
    static final int TILE_PARTIAL = 1;
    static final int TILE_FULL = 2;

    /** Visibility bits, or null when neither a dense mask nor a MaskMod is set. */
    final int[] bits;
    /** The bias in F32, or null. */
    final float[] bias;
    /** Header and tile table. */
    final int[] meta;
    /** The masked kernel that runs the call ({@link MaskedForward#choose}; the backward's dK/dV kernel for both). */
    final Kernel kernel;
    /** Its tile plan, which the table is cut for. */
    final TilePlan plan;

    private DeviceMasks(int[] bits, float[] bias, int[] meta, Kernel kernel, TilePlan plan) {
        this.bits = bits;
        this.bias = bias;
        this.meta = meta;
        this.kernel = kernel;
        this.plan = plan;
    }

    /**
     * The device form of {@code options}' masks and bias for a validated call, or null when it sets none. A
     * ScoreMod is not evaluated here (validation refuses it on this backend).
     *
     * @throws IllegalArgumentException naming the option when its device form is over the device's
     *     {@code maxStorageBufferRange} or 2^31 elements
     */
    static DeviceMasks of(DeviceInfo device, AttentionShape shape, AttentionOptions options) {
        if (!options.hasMasksOrScoreMods()) {
            return null;
        }
        AttentionKernels.ForwardChoice choice = MaskedForward.choose(device, shape);
        return of(device, shape, options, choice.kernel(), choice.plan());
    }

    /**
     * As {@link #of(DeviceInfo, AttentionShape, AttentionOptions)}, with the tile table cut for the backward's
     * square plan ({@link TilePlan#backward}), which both masked backward kernels share ({@link
     * Kernel#BACKWARD_KV_MASKED} is recorded as the kernel; {@link MaskedBackward} runs both).
     *
     * @throws IllegalArgumentException as above, and naming {@code options} when the device binds fewer storage
     *     buffers per stage than the masked dK/dV kernel needs (checked before anything is evaluated or written)
     */
    static DeviceMasks forBackward(DeviceInfo device, AttentionShape shape, AttentionOptions options) {
        if (!options.hasMasksOrScoreMods()) {
            return null;
        }
        int bindings = Kernel.BACKWARD_KV_MASKED.bindings;
        int limit = Math.min(device.maxStageStorageBuffers(), device.maxSetStorageBuffers());
        if (bindings > limit) {
            throw new IllegalArgumentException("options: the masked backward binds " + bindings
                    + " storage buffers, over the " + limit + " that " + device.name()
                    + " binds per stage or set (maxPerStageDescriptorStorageBuffers, maxDescriptorSetStorageBuffers);"
                    + " run the masked backward on the cpu backend");
        }
        TilePlan plan = TilePlan.backward(device, TilePlan.bucket(shape.headDim(), shape.valueDim()));
        return of(device, shape, options, Kernel.BACKWARD_KV_MASKED, plan);
    }

    private static DeviceMasks of(
            DeviceInfo device, AttentionShape shape, AttentionOptions options, Kernel kernel, TilePlan plan) {
        AttentionMask mask = options.mask();
        MaskMod mod = options.maskMod();
        Tensor biasTensor = options.bias();
        int sq = shape.queryLen();
        int sk = shape.keyLen();
        boolean hasBits = mask != null || mod != null;
        int bitsB = !hasBits ? 1 : mod != null ? shape.batch() : mask.batch();
        int bitsH = !hasBits ? 1 : mod != null ? shape.queryHeads() : mask.heads();
        int wordsPerRow = Math.ceilDiv(sk, 32);
        int rowTiles = Math.ceilDiv(sq, plan.rows());
        int keyTiles = Math.ceilDiv(sk, plan.keys());
        String bitsName = mod != null ? "options.maskMod" : "options.mask";
        long bitWords = hasBits ? (long) bitsB * bitsH * sq * wordsPerRow : 0;
        DeviceLimits.checkStorageBuffer(device, bitsName, bitWords, Integer.BYTES, "mask bits");
        long biasElements = biasTensor == null ? 0 : (long) biasTensor.batch() * biasTensor.heads() * sq * sk;
        DeviceLimits.checkStorageBuffer(device, "options.bias", biasElements, Float.BYTES, "F32");
        long metaWords = HEADER + (long) bitsB * bitsH * rowTiles * keyTiles;
        DeviceLimits.checkStorageBuffer(device, bitsName, metaWords, Integer.BYTES, "tile codes");

        Visibility visibility = Visibility.of(sq, sk, options);
        int[] bits = hasBits ? new int[(int) bitWords] : null;
        if (hasBits) {
            for (int b = 0; b < bitsB; b++) {
                for (int h = 0; h < bitsH; h++) {
                    fillBits(bits, (b * bitsH + h) * sq * wordsPerRow, wordsPerRow, b, h, options, visibility);
                }
            }
        }
        int[] meta = new int[(int) metaWords];
        meta[HAS_BITS] = hasBits ? 1 : 0;
        meta[BITS_B] = bitsB == 1 ? 0 : bitsH * sq * wordsPerRow;
        meta[BITS_H] = bitsH == 1 ? 0 : sq * wordsPerRow;
        meta[WORDS_PER_ROW] = wordsPerRow;
        meta[TILES_B] = bitsB == 1 ? 0 : bitsH * rowTiles * keyTiles;
        meta[TILES_H] = bitsH == 1 ? 0 : rowTiles * keyTiles;
        meta[KEY_TILES] = keyTiles;
        for (int g = 0; g < bitsB * bitsH; g++) {
            for (int rt = 0; rt < rowTiles; rt++) {
                for (int kt = 0; kt < keyTiles; kt++) {
                    meta[HEADER + (g * rowTiles + rt) * keyTiles + kt] = hasBits
                            ? tile(bits, g * sq * wordsPerRow, wordsPerRow, plan, rt, kt, sq, sk, visibility)
                            : TILE_FULL;
                }
            }
        }
        float[] bias = null;
        if (biasTensor != null) {
            bias = widen(biasTensor, sq, sk);
            meta[HAS_BIAS] = 1;
            meta[BIAS_B] = biasTensor.batch() == 1 ? 0 : biasTensor.heads() * sq * sk;
            meta[BIAS_H] = biasTensor.heads() == 1 ? 0 : sq * sk;
        }
        return new DeviceMasks(bits, bias, meta, kernel, plan);
    }

    /**
     * Bits of one (b, h) grid from {@code at}: the dense mask and the MaskMod over each row's interval, the
     * BlockMask's EMPTY and FULL blocks taken as they say.
     */
    private static void fillBits(
            int[] bits, int at, int wordsPerRow, int b, int h, AttentionOptions options, Visibility visibility) {
        AttentionMask mask = options.mask();
        MaskMod mod = options.maskMod();
        BlockMask blockMask = options.blockMask();
        int sq = visibility.queryLen();
        for (int i = 0; i < sq; i++) {
            int row = at + i * wordsPerRow;
            int last = visibility.last(i);
            for (int j = visibility.first(i); j <= last; j++) {
                boolean visible = mask == null || mask.get(b, h, i, j);
                if (visible && mod != null) {
                    BlockMask.Status block = blockMask == null
                            ? BlockMask.Status.PARTIAL
                            : blockMask.status(b, h, i / BlockMask.BLOCK, j / BlockMask.BLOCK);
                    visible = block == BlockMask.Status.FULL
                            || (block == BlockMask.Status.PARTIAL && mod.visible(b, h, i, j));
                }
                if (visible) {
                    bits[row + (j >>> 5)] |= 1 << (j & 31);
                }
            }
        }
    }

    /** The code of query tile {@code rt} and key tile {@code kt} of one (b, h) grid of bits. */
    private static int tile(
            int[] bits, int at, int wordsPerRow, TilePlan plan, int rt, int kt, int sq, int sk, Visibility visibility) {
        boolean any = false;
        boolean all = true;
        int j0 = kt * plan.keys();
        int j1 = Math.min(sk, j0 + plan.keys()) - 1;
        for (int i = rt * plan.rows(); i < Math.min(sq, (rt + 1) * plan.rows()); i++) {
            int lo = Math.max(j0, visibility.first(i));
            int hi = Math.min(j1, visibility.last(i));
            int row = at + i * wordsPerRow;
            for (int j = lo; j <= hi; j++) {
                boolean bit = (bits[row + (j >>> 5)] >>> (j & 31) & 1) != 0;
                any |= bit;
                all &= bit;
            }
        }
        return !any ? TILE_EMPTY : all ? TILE_FULL : TILE_PARTIAL;
    }

    /** The bias as F32 {@code [B or 1, Hq or 1, Sq, Sk]}, contiguous. */
    private static float[] widen(Tensor bias, int sq, int sk) {
        float[] out = new float[Math.toIntExact((long) bias.batch() * bias.heads() * sq * sk)];
        int n = 0;
        for (int b = 0; b < bias.batch(); b++) {
            for (int h = 0; h < bias.heads(); h++) {
                for (int i = 0; i < sq; i++) {
                    for (int j = 0; j < sk; j++) {
                        out[n++] = bias.get(b, h, i, j);
                    }
                }
            }
        }
        return out;
    }
}
