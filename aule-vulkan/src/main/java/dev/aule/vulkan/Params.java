package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.spi.AttentionShape;

/**
 * The push constants every kernel reads (the {@code Params} block of common.glsl), in its order.
 * Windows wider than the sequences are passed as unbounded, which means the same and keeps every
 * index sum in the shaders within an int.
 */
record Params(
        AttentionShape shape,
        float scale,
        float softcap,
        int left,
        int right,
        boolean alibi,
        boolean writeLse,
        int count,
        int tileBase,
        int kvBlock,
        int tableStride,
        int numBlocks) {
    static final int INTS = 18;

    static Params of(AttentionShape shape, AttentionOptions options, boolean writeLse) {
        long span = (long) shape.queryLen() + shape.keyLen();
        int left = options.windowLeft() > span ? -1 : options.windowLeft();
        int right = options.effectiveWindowRight() > span ? -1 : options.effectiveWindowRight();
        return new Params(
                shape,
                options.scale(shape.headDim()),
                options.softcap(),
                left,
                right,
                options.hasAlibi(),
                writeLse,
                0,
                0,
                0,
                0,
                0);
    }

    /** The same geometry with {@code rowCount} set (delta: rows; pack16: elements). */
    Params withCount(int n) {
        return new Params(
                shape, scale, softcap, left, right, alibi, writeLse, n, tileBase, kvBlock, tableStride, numBlocks);
    }

    /** The same with the forward kernels' first query tile at {@code tiles} (one part of a split grid). */
    Params withTileBase(int tiles) {
        return new Params(
                shape, scale, softcap, left, right, alibi, writeLse, count, tiles, kvBlock, tableStride, numBlocks);
    }

    /** The same with the paged serving kernels' block size and block-table stride (see ServingKeys). */
    Params withPaging(int blockSize, int stride) {
        return new Params(
                shape, scale, softcap, left, right, alibi, writeLse, count, tileBase, blockSize, stride, numBlocks);
    }

    /** The same with the quantized serving kernels' pool size in blocks (see ServingKeys). */
    Params withBlocks(int blocks) {
        return new Params(
                shape, scale, softcap, left, right, alibi, writeLse, count, tileBase, kvBlock, tableStride, blocks);
    }

    int[] words() {
        return new int[] {
            shape.batch(),
            shape.queryHeads(),
            shape.kvHeads(),
            shape.queryLen(),
            shape.keyLen(),
            shape.headDim(),
            shape.valueDim(),
            Float.floatToRawIntBits(scale),
            Float.floatToRawIntBits(softcap),
            left,
            right,
            alibi ? 1 : 0,
            writeLse ? 1 : 0,
            count,
            tileBase,
            kvBlock,
            tableStride,
            numBlocks
        };
    }
}
