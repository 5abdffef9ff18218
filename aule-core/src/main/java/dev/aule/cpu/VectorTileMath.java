package dev.aule.cpu;

import dev.aule.cpu.vector.BackwardRows;
import dev.aule.cpu.vector.DropoutMasks;
import dev.aule.cpu.vector.Elementwise;
import dev.aule.cpu.vector.HalfProducts;
import dev.aule.cpu.vector.HalfWidening;
import dev.aule.cpu.vector.Products;
import dev.aule.cpu.vector.Reductions;
import dev.aule.cpu.vector.Scores;
import dev.aule.cpu.vector.SimdWidth;
import dev.aule.cpu.vector.WideBlocks;

import java.lang.foreign.MemorySegment;

/**
 * SIMD tile arithmetic: the seam between the kernels and the Vector API code of {@code dev.aule.cpu.vector},
 * on the width {@link SimdWidth} chose for this JVM (the preferred one, or {@value SimdWidth#PROPERTY}).
 *
 * <p>Tile sizes: a key block is {@link TileConfig#KEY_BLOCK_VECTORS} vectors wide (64 keys with 512-bit
 * vectors), so both products run as {@link TileConfig#MICRO_ROWS} query rows x 4 vectors = 16 accumulators (4 x 2
 * on AVX2). A 256 x 64 x 128 tile set (q, kt, v, s, o) is about 400 KiB, within L2.
 */
final class VectorTileMath implements TileMath {

    @Override
    public int lanes() {
        return SimdWidth.lanes();
    }

    @Override
    public int keyTile() {
        return SimdWidth.keyTile();
    }

    @Override
    public String description() {
        return SimdWidth.bits() + "-bit Vector API (" + SimdWidth.lanes() + " floats; " + SimdWidth.keyTile()
                + "-key blocks, " + TileConfig.WIDE_KEY_PANELS * SimdWidth.keyTile()
                + " per softmax step at head dims up to "
                + TileConfig.WIDE_MAX_HEAD_DIM + ", register blocks " + Products.forwardBlocks()
                + ", softmax fused into the scores)";
    }

    @Override
    public void scoresByRow(
            float[] q, int rows, int dp, float[] k, int kOff, int kStride, int keys, float[] s, int sCol) {
        Scores.scoresByRow(q, rows, dp, k, kOff, kStride, keys, s, sCol);
    }

    @Override
    public void scoresByRow(
            float[] q, int rows, int dp, MemorySegment k, long kOff, long kStride, int keys, float[] s, int sCol) {
        Scores.scoresByRow(q, rows, dp, k, kOff, kStride, keys, s, sCol);
    }

    @Override
    public void scoresByKey(
            float[] qT, int rows, int d, float[] k, int kOff, int kStride, int keys, float[] sT, float[] s, int sCol) {
        Scores.scoresByKey(qT, rows, d, k, kOff, kStride, keys, sT, s, sCol);
    }

    @Override
    public int queryColumns(int rows) {
        return Scores.queryColumns(rows);
    }

    @Override
    public void widen(MemorySegment src, long srcOff, boolean bf16, float[] dst, int dstOff, int count) {
        HalfWidening.widen(src, srcOff, bf16, dst, dstOff, count);
    }

    @Override
    public void dequantize(
            dev.aule.spi.QuantizedKv.Format format,
            byte[] codes,
            int codeOff,
            int dim,
            int rows,
            float scale,
            float[] dst,
            int dstOff,
            int dstStride) {
        dev.aule.cpu.vector.ByteWidening.dequantize(format, codes, codeOff, dim, rows, scale, dst, dstOff, dstStride);
    }

    @Override
    public boolean codesInPlace(int dim) {
        return dev.aule.cpu.vector.QuantizedProducts.supported() && dim % SimdWidth.lanes() == 0;
    }

    @Override
    public void quantizedScores(
            float[] q,
            float[] qRebiased,
            int rows,
            int dp,
            dev.aule.spi.QuantizedKv.Format format,
            byte[] k,
            int keyStride,
            int dim,
            int runs,
            int[] runOffsets,
            int[] runKeys,
            float[] runScales,
            long abnormal,
            float[] s,
            int sCol) {
        dev.aule.cpu.vector.QuantizedProducts.scores(
                q,
                qRebiased,
                rows,
                dp,
                format,
                k,
                keyStride,
                dim,
                runs,
                runOffsets,
                runKeys,
                runScales,
                abnormal,
                s,
                sCol);
    }

    @Override
    public float[] rebiasQueries(dev.aule.spi.QuantizedKv.Format format, float[] q, int n, float[] dst) {
        return dev.aule.cpu.vector.QuantizedProducts.rebiasQueries(format, q, n, dst) ? dst : null;
    }

    @Override
    public long abnormalKeys(
            dev.aule.spi.QuantizedKv.Format format, byte[] codes, int off, int keyStride, int dim, int keys) {
        return dev.aule.cpu.vector.QuantizedProducts.abnormalKeys(format, codes, off, keyStride, dim, keys);
    }

    @Override
    public long abnormalRows(dev.aule.spi.QuantizedKv.Format format, byte[] codes, int off, int dim, int keys) {
        return dev.aule.cpu.vector.QuantizedProducts.abnormalRows(format, codes, off, dim, keys);
    }

    @Override
    public void accumulate(
            Scratch sc,
            int rows,
            int keys,
            int pCol,
            dev.aule.spi.QuantizedKv.Format format,
            byte[] v,
            int vOff,
            int dim,
            float scale,
            float pBound,
            long abnormal,
            float[] alpha) {
        dev.aule.cpu.vector.QuantizedProducts.accumulate(
                sc.s, rows, keys, pCol, format, v, vOff, dim, scale, pBound, abnormal, sc.dvp, sc.o, alpha);
    }

    @Override
    public void scale(float[] x, int off, int n, float factor) {
        Elementwise.scale(x, off, n, factor);
    }

    @Override
    public void scaleTo(float[] src, int srcOff, int n, float factor, float[] dst, int dstOff) {
        Elementwise.scaleTo(src, srcOff, n, factor, dst, dstOff);
    }

    @Override
    public void softcap(float[] s, int off, int n, float scale, float cap) {
        Elementwise.softcap(s, off, n, scale, cap);
    }

    @Override
    public void alibi(float[] s, int off, int n, float slope, float center) {
        Elementwise.alibi(s, off, n, slope, center);
    }

    @Override
    public boolean allFinite(float[] s, int off, int n) {
        return Reductions.allFinite(s, off, n);
    }

    @Override
    public float max(float[] s, int off, int n) {
        return Reductions.max(s, off, n);
    }

    @Override
    public float expSum(float[] s, int off, int n, float max) {
        return Reductions.expSum(s, off, n, max);
    }

    @Override
    public void accumulate(Scratch sc, int rows, int keys, int pCol, float[] v, int vOff, int vStride, float[] alpha) {
        Products.accumulate(sc.s, rows, keys, pCol, v, vOff, vStride, sc.dvp, sc.o, alpha);
    }

    @Override
    public void accumulateTile(
            Scratch sc, int from, int rows, int keys, float[] v, int vOff, int vStride, float[] alpha) {
        Products.accumulateTile(sc.s, from, rows, keys, v, vOff, vStride, sc.dvp, sc.o, alpha);
    }

    @Override
    public void accumulate(
            Scratch sc, int rows, int keys, int pCol, MemorySegment v, long vOff, long vStride, float[] alpha) {
        Products.accumulate(sc.s, rows, keys, pCol, v, vOff, vStride, sc.dvp, sc.o, alpha);
    }

    @Override
    public void scoresByRow(
            float[] q,
            int rows,
            int dp,
            short[] k,
            int kOff,
            int kStride,
            boolean bf16,
            int keys,
            float[] s,
            int sCol) {
        HalfProducts.scoresByRow(q, rows, dp, k, kOff, kStride, bf16, keys, s, sCol);
    }

    @Override
    public void accumulate(
            Scratch sc, int rows, int keys, int pCol, short[] v, int vOff, int vStride, boolean bf16, float[] alpha) {
        HalfProducts.accumulate(sc.s, rows, keys, pCol, v, vOff, vStride, bf16, sc.dvp, sc.o, alpha);
    }

    @Override
    public void scoresByRow(
            float[] q,
            int rows,
            int dp,
            MemorySegment k,
            long kOff,
            long kStride,
            boolean bf16,
            int keys,
            float[] s,
            int sCol) {
        HalfProducts.scoresByRow(q, rows, dp, k, kOff, kStride, bf16, keys, s, sCol);
    }

    @Override
    public void accumulate(
            Scratch sc,
            int rows,
            int keys,
            int pCol,
            MemorySegment v,
            long vOff,
            long vStride,
            boolean bf16,
            float[] alpha) {
        HalfProducts.accumulate(sc.s, rows, keys, pCol, v, vOff, vStride, bf16, sc.dvp, sc.o, alpha);
    }

    @Override
    public void multiply(float[] a, int rows, int inner, float[] b, int bOff, float[] c) {
        Products.multiply(a, 0, rows, inner, b, bOff, c, 0, keyTile());
    }

    @Override
    public boolean wideBlocks() {
        return true;
    }

    @Override
    public boolean wideBlock(
            Scratch sc,
            int qStride,
            int d,
            int from,
            int to,
            float[] keys,
            int keyOff,
            int panels,
            float[] v,
            int vOff,
            int vStride,
            int key0,
            boolean dropout,
            int dropoutThreshold,
            float dropoutInverse) {
        return WideBlocks.run(
                sc.q,
                qStride,
                d,
                from,
                to,
                keys,
                keyOff,
                panels,
                v,
                vOff,
                vStride,
                sc.dvp,
                sc.wideScores(WideBlocks.GROUP_ROWS * panels * keyTile()),
                sc.o,
                sc.m,
                sc.l,
                sc.alpha,
                sc.ones,
                dropout ? new WideBlocks.Dropout(key0, sc.dropLo, sc.dropHi, dropoutThreshold, dropoutInverse) : null);
    }

    @Override
    public void multiplySoftmax(
            float[] a,
            int from,
            int rows,
            int inner,
            float[] b,
            int bOff,
            float[] c,
            boolean[] fuse,
            float[] m,
            float[] l,
            float[] alpha) {
        Products.multiplySoftmax(a, from, rows, inner, b, bOff, c, fuse, m, l, alpha);
    }

    @Override
    public void multiplyAdd(float[] a, int rows, int inner, float[] b, int bOff, int width, float[] c, int cOff) {
        Products.multiplyAdd(a, rows, inner, b, bOff, width, c, cOff);
    }

    @Override
    public void softmaxBackward(
            float[] s, float[] dp, int keys, int key0, int rowOff, boolean masked, BackwardRows rows) {
        Elementwise.softmaxBackward(s, dp, keys, key0, rowOff, masked, rows);
    }

    @Override
    public void dropoutRow(float[] s, int off, int n, int key0, int lo, int hi, int threshold, float inverse) {
        DropoutMasks.row(s, off, n, key0, lo, hi, threshold, inverse);
    }

    @Override
    public void dropoutFactors(
            float[] f, int keys, int key0, int[] lo, int[] hi, int rowOff, int threshold, float inverse) {
        DropoutMasks.factors(f, keys, key0, lo, hi, rowOff, threshold, inverse);
    }

    @Override
    public void applyFactors(float[] x, float[] f, int n) {
        DropoutMasks.applyFactors(x, f, n);
    }
}
