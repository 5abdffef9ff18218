package dev.aule.cpu.vector;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;

/**
 * The register-blocked products of the tiles: {@link #multiply} (the forward's scores, the backward's
 * transposed scores and {@code dOut . v}), {@link #multiplyAdd} (the backward's gradient products) and
 * {@link #accumulate} (the forward's {@code o = alpha o + p v}). One register block serves them all: 4 rows x 4
 * vectors = 16 accumulators, 4 operand vectors and a broadcast in the 32 AVX-512 registers, or 4 x 2 on AVX2
 * (see {@link #NARROW}); at 512 bits the forward's scores take 6 x 4 blocks and its P·V over 2-vector value rows
 * 8 x 2 ({@link #multiplySoftmax}, {@link #accumulateTile}); a backward tile is KT x KT (64 x 64 with 512-bit vectors), so one call streams at most a
 * KT x 128 operand from L1/L2 per 4 rows.
 *
 * <p>{@link #multiply} is public for aule-bench's SGEMM yardstick (see the package documentation).
 */
public final class Products {
    private static final VectorSpecies<Float> F = SimdWidth.F;
    private static final int L = SimdWidth.L;
    private static final int KT = SimdWidth.KT;
    private static final long LANE_BYTES = (long) L * Float.BYTES;
    /**
     * 256-bit vectors (AVX2): 16 registers cannot hold a 4 x 4 block of accumulators with its 4 operand
     * vectors and a broadcast (21), so the products use 4 x 2 blocks there: 8 accumulators, 2 operands and a
     * broadcast (alone on a 256 x 128 by 128 x 32 product: 79 to 88 GFLOP/s against 48 to 51).
     */
    private static final boolean NARROW = L == 8;
    /**
     * Whether the forward's scores ({@link #multiplySoftmax}) take 6 x 4 blocks and its P·V over 2-vector value rows
     * ({@link #accumulateTile}) 8 x 2: only with 32 registers (512-bit vectors); with 16 the 4 x 2 blocks of
     * {@link #NARROW} are already all there is room for.
     */
    private static final boolean WIDE_SCORES = L == 16;

    private static final float[] ONES = {1f, 1f, 1f, 1f, 1f, 1f};
    /** Tensors store floats in native order. */
    private static final ByteOrder NATIVE = ByteOrder.nativeOrder();

    private Products() {}

    /**
     * The forward's register blocks at this width, rows x vectors, for {@code aule info}: the score product's and
     * P·V's.
     */
    public static String forwardBlocks() {
        if (WIDE_SCORES) {
            return "scores 6x4, P·V 6x4 (8x2 for 2-vector value rows, 4x4 for other widths)";
        }
        return NARROW ? "scores 4x2, P·V 4x2" : "scores 4x4, P·V 4x4";
    }

    /**
     * {@code c[cOff + t * cStride + j] = sum_x a[aOff + t * inner + x] b[bOff + x * KT + j]} for {@code t < rows},
     * {@code j < KT} ({@link SimdWidth#keyTile()}): {@code a} row-major {@code [rows][inner]}, {@code b} a panel
     * {@code [inner][KT]}. {@code rows} is a multiple of 4. Overwrites those columns of {@code c}.
     */
    public static void multiply(
            float[] a, int aOff, int rows, int inner, float[] b, int bOff, float[] c, int cOff, int cStride) {
        multiply(a, aOff, inner, rows, inner, b, bOff, c, cOff, cStride, false);
    }

    /**
     * {@link #multiply(float[], int, int, int, float[], int, float[], int, int)} over {@code inner} columns of
     * {@code a}'s rows {@code aStride} apart, adding to {@code c} when {@code accumulate}: the running sums start
     * from {@code c}'s values, so a product split over consecutive ranges of {@code inner} (panel rows {@code x0}
     * on at {@code bOff + x0 * KT}, {@code a} from {@code aOff + x0}) gives the bits of one pass over all of it.
     */
    public static void multiply(
            float[] a,
            int aOff,
            int aStride,
            int rows,
            int inner,
            float[] b,
            int bOff,
            float[] c,
            int cOff,
            int cStride,
            boolean accumulate) {
        if (NARROW) {
            multiplyPairs(a, aOff, aStride, rows, inner, b, bOff, c, cOff, cStride, accumulate);
            return;
        }
        int t = 0;
        if (WIDE_SCORES) {
            // 6-row blocks in pairs, so the rows left for 4-row blocks stay a multiple of 4 (same bits either way).
            for (; rows - t >= 12; t += 12) {
                multiplySix(a, aOff + t * aStride, aStride, inner, b, bOff, c, cOff + t * cStride, cStride, accumulate);
                multiplySix(
                        a,
                        aOff + (t + 6) * aStride,
                        aStride,
                        inner,
                        b,
                        bOff,
                        c,
                        cOff + (t + 6) * cStride,
                        cStride,
                        accumulate);
            }
        }
        multiplyFours(a, aOff, aStride, t, rows, inner, b, bOff, c, cOff, cStride, accumulate);
    }

    /** {@code c}'s vector at {@code at} when accumulating, else zero: where a running sum starts. */
    private static FloatVector start(float[] c, int at, boolean accumulate) {
        return accumulate ? FloatVector.fromArray(F, c, at) : FloatVector.zero(F);
    }

    /** Rows {@code [t0, rows)} of {@link #multiply} in 4 x 4 blocks. */
    private static void multiplyFours(
            float[] a,
            int aOff,
            int aStride,
            int t0,
            int rows,
            int inner,
            float[] b,
            int bOff,
            float[] c,
            int cOff,
            int cStride,
            boolean accumulate) {
        for (int t = t0; t < rows; t += 4) {
            int a0 = aOff + t * aStride;
            int a1 = a0 + aStride;
            int a2 = a1 + aStride;
            int a3 = a2 + aStride;
            int s0 = cOff + t * cStride;
            int s1 = s0 + cStride;
            int s2 = s1 + cStride;
            int s3 = s2 + cStride;
            FloatVector c00 = start(c, s0, accumulate), c01 = start(c, s0 + L, accumulate);
            FloatVector c02 = start(c, s0 + 2 * L, accumulate), c03 = start(c, s0 + 3 * L, accumulate);
            FloatVector c10 = start(c, s1, accumulate), c11 = start(c, s1 + L, accumulate);
            FloatVector c12 = start(c, s1 + 2 * L, accumulate), c13 = start(c, s1 + 3 * L, accumulate);
            FloatVector c20 = start(c, s2, accumulate), c21 = start(c, s2 + L, accumulate);
            FloatVector c22 = start(c, s2 + 2 * L, accumulate), c23 = start(c, s2 + 3 * L, accumulate);
            FloatVector c30 = start(c, s3, accumulate), c31 = start(c, s3 + L, accumulate);
            FloatVector c32 = start(c, s3 + 2 * L, accumulate), c33 = start(c, s3 + 3 * L, accumulate);
            for (int x = 0, bb = bOff; x < inner; x++, bb += KT) {
                FloatVector b0 = FloatVector.fromArray(F, b, bb);
                FloatVector b1 = FloatVector.fromArray(F, b, bb + L);
                FloatVector b2 = FloatVector.fromArray(F, b, bb + 2 * L);
                FloatVector b3 = FloatVector.fromArray(F, b, bb + 3 * L);
                FloatVector e = FloatVector.broadcast(F, a[a0 + x]);
                c00 = b0.fma(e, c00);
                c01 = b1.fma(e, c01);
                c02 = b2.fma(e, c02);
                c03 = b3.fma(e, c03);
                e = FloatVector.broadcast(F, a[a1 + x]);
                c10 = b0.fma(e, c10);
                c11 = b1.fma(e, c11);
                c12 = b2.fma(e, c12);
                c13 = b3.fma(e, c13);
                e = FloatVector.broadcast(F, a[a2 + x]);
                c20 = b0.fma(e, c20);
                c21 = b1.fma(e, c21);
                c22 = b2.fma(e, c22);
                c23 = b3.fma(e, c23);
                e = FloatVector.broadcast(F, a[a3 + x]);
                c30 = b0.fma(e, c30);
                c31 = b1.fma(e, c31);
                c32 = b2.fma(e, c32);
                c33 = b3.fma(e, c33);
            }
            c00.intoArray(c, s0);
            c01.intoArray(c, s0 + L);
            c02.intoArray(c, s0 + 2 * L);
            c03.intoArray(c, s0 + 3 * L);
            c10.intoArray(c, s1);
            c11.intoArray(c, s1 + L);
            c12.intoArray(c, s1 + 2 * L);
            c13.intoArray(c, s1 + 3 * L);
            c20.intoArray(c, s2);
            c21.intoArray(c, s2 + L);
            c22.intoArray(c, s2 + 2 * L);
            c23.intoArray(c, s2 + 3 * L);
            c30.intoArray(c, s3);
            c31.intoArray(c, s3 + L);
            c32.intoArray(c, s3 + 2 * L);
            c33.intoArray(c, s3 + 3 * L);
        }
    }

    /**
     * The forward's scores {@code c[t][j] = a[t] . b[.][j]} ({@link #multiply} with {@code c}'s rows KT apart from
     * 0) with the online-softmax update of every row {@code fuse} marks ({@link Reductions#softmaxRow}) done on
     * each group of 4 rows right after its product, while its scores are still in L1 rather than in a later pass
     * over the whole score tile. {@code fuse[t]} comes back false for a marked row the update left to the caller
     * (a max that is not finite), whose scores are then the raw products. Rows {@code [from, rows)} only, both
     * multiples of 4: the rows before {@code from} are not read or written.
     */
    public static void multiplySoftmax(
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
        for (int t = from; t < rows; ) {
            // 6-row blocks in pairs, so the rows left for 4-row blocks stay a multiple of 4.
            int block = WIDE_SCORES && rows - t >= 12 ? 6 : 4;
            int pairs = block == 6 ? 2 : 1;
            for (int i = 0; i < pairs; i++, t += block) {
                if (block == 6) {
                    multiplySix(a, t * inner, inner, inner, b, bOff, c, t * KT, KT, false);
                } else {
                    multiplyFours(a, 0, inner, t, t + 4, inner, b, bOff, c, 0, KT, false);
                }
                for (int r = t; r < t + block; r++) {
                    if (fuse[r]) {
                        fuse[r] = Reductions.softmaxRow(c, r * KT, KT, m, l, alpha, r);
                    }
                }
            }
        }
    }

    /**
     * Rows {@code t..t+5} of the forward's scores or of {@link #multiply}'s product, rows {@code cStride} apart in
     * {@code c}, in one 6 x 4 block (24 accumulators, 4 operand vectors and a broadcast: 29 of the 32 AVX-512
     * registers), so each loaded key vector serves 6 FMAs instead of 4 and the key panel streams from L1/L2 a third
     * fewer times per tile. Each score sums over {@code x} in the same order
     * as {@link #multiply}'s 4 x 4 block, so the bits do not depend on the block a row falls in.
     */
    private static void multiplySix(
            float[] a,
            int aOff,
            int aStride,
            int inner,
            float[] b,
            int bOff,
            float[] c,
            int cOff,
            int cStride,
            boolean accumulate) {
        int a0 = aOff;
        int a1 = aOff + 1 * aStride;
        int a2 = aOff + 2 * aStride;
        int a3 = aOff + 3 * aStride;
        int a4 = aOff + 4 * aStride;
        int a5 = aOff + 5 * aStride;
        int o0 = cOff + 0 * cStride;
        int o1 = cOff + 1 * cStride;
        int o2 = cOff + 2 * cStride;
        int o3 = cOff + 3 * cStride;
        int o4 = cOff + 4 * cStride;
        int o5 = cOff + 5 * cStride;
        FloatVector c00 = start(c, o0, accumulate), c01 = start(c, o0 + L, accumulate);
        FloatVector c02 = start(c, o0 + 2 * L, accumulate), c03 = start(c, o0 + 3 * L, accumulate);
        FloatVector c10 = start(c, o1, accumulate), c11 = start(c, o1 + L, accumulate);
        FloatVector c12 = start(c, o1 + 2 * L, accumulate), c13 = start(c, o1 + 3 * L, accumulate);
        FloatVector c20 = start(c, o2, accumulate), c21 = start(c, o2 + L, accumulate);
        FloatVector c22 = start(c, o2 + 2 * L, accumulate), c23 = start(c, o2 + 3 * L, accumulate);
        FloatVector c30 = start(c, o3, accumulate), c31 = start(c, o3 + L, accumulate);
        FloatVector c32 = start(c, o3 + 2 * L, accumulate), c33 = start(c, o3 + 3 * L, accumulate);
        FloatVector c40 = start(c, o4, accumulate), c41 = start(c, o4 + L, accumulate);
        FloatVector c42 = start(c, o4 + 2 * L, accumulate), c43 = start(c, o4 + 3 * L, accumulate);
        FloatVector c50 = start(c, o5, accumulate), c51 = start(c, o5 + L, accumulate);
        FloatVector c52 = start(c, o5 + 2 * L, accumulate), c53 = start(c, o5 + 3 * L, accumulate);
        for (int x = 0, bb = bOff; x < inner; x++, bb += KT) {
            FloatVector b0 = FloatVector.fromArray(F, b, bb);
            FloatVector b1 = FloatVector.fromArray(F, b, bb + 1 * L);
            FloatVector b2 = FloatVector.fromArray(F, b, bb + 2 * L);
            FloatVector b3 = FloatVector.fromArray(F, b, bb + 3 * L);
            FloatVector e = FloatVector.broadcast(F, a[a0 + x]);
            c00 = b0.fma(e, c00);
            c01 = b1.fma(e, c01);
            c02 = b2.fma(e, c02);
            c03 = b3.fma(e, c03);
            e = FloatVector.broadcast(F, a[a1 + x]);
            c10 = b0.fma(e, c10);
            c11 = b1.fma(e, c11);
            c12 = b2.fma(e, c12);
            c13 = b3.fma(e, c13);
            e = FloatVector.broadcast(F, a[a2 + x]);
            c20 = b0.fma(e, c20);
            c21 = b1.fma(e, c21);
            c22 = b2.fma(e, c22);
            c23 = b3.fma(e, c23);
            e = FloatVector.broadcast(F, a[a3 + x]);
            c30 = b0.fma(e, c30);
            c31 = b1.fma(e, c31);
            c32 = b2.fma(e, c32);
            c33 = b3.fma(e, c33);
            e = FloatVector.broadcast(F, a[a4 + x]);
            c40 = b0.fma(e, c40);
            c41 = b1.fma(e, c41);
            c42 = b2.fma(e, c42);
            c43 = b3.fma(e, c43);
            e = FloatVector.broadcast(F, a[a5 + x]);
            c50 = b0.fma(e, c50);
            c51 = b1.fma(e, c51);
            c52 = b2.fma(e, c52);
            c53 = b3.fma(e, c53);
        }
        c00.intoArray(c, o0);
        c01.intoArray(c, o0 + 1 * L);
        c02.intoArray(c, o0 + 2 * L);
        c03.intoArray(c, o0 + 3 * L);
        c10.intoArray(c, o1);
        c11.intoArray(c, o1 + 1 * L);
        c12.intoArray(c, o1 + 2 * L);
        c13.intoArray(c, o1 + 3 * L);
        c20.intoArray(c, o2);
        c21.intoArray(c, o2 + 1 * L);
        c22.intoArray(c, o2 + 2 * L);
        c23.intoArray(c, o2 + 3 * L);
        c30.intoArray(c, o3);
        c31.intoArray(c, o3 + 1 * L);
        c32.intoArray(c, o3 + 2 * L);
        c33.intoArray(c, o3 + 3 * L);
        c40.intoArray(c, o4);
        c41.intoArray(c, o4 + 1 * L);
        c42.intoArray(c, o4 + 2 * L);
        c43.intoArray(c, o4 + 3 * L);
        c50.intoArray(c, o5);
        c51.intoArray(c, o5 + 1 * L);
        c52.intoArray(c, o5 + 2 * L);
        c53.intoArray(c, o5 + 3 * L);
    }

    /**
     * {@link #multiply} in 4 x 2 blocks (see {@link #NARROW}): each 4-row block in two passes over half the
     * columns.
     */
    private static void multiplyPairs(
            float[] a,
            int aOff,
            int aStride,
            int rows,
            int inner,
            float[] b,
            int bOff,
            float[] c,
            int cOff,
            int cStride,
            boolean accumulate) {
        for (int t = 0; t < rows; t += 4) {
            int a0 = aOff + t * aStride;
            int a1 = a0 + aStride;
            int a2 = a1 + aStride;
            int a3 = a2 + aStride;
            for (int h = 0; h < KT; h += 2 * L) {
                int o = cOff + t * cStride + h;
                FloatVector c00 = start(c, o, accumulate), c01 = start(c, o + L, accumulate);
                FloatVector c10 = start(c, o + cStride, accumulate), c11 = start(c, o + cStride + L, accumulate);
                FloatVector c20 = start(c, o + 2 * cStride, accumulate);
                FloatVector c21 = start(c, o + 2 * cStride + L, accumulate);
                FloatVector c30 = start(c, o + 3 * cStride, accumulate);
                FloatVector c31 = start(c, o + 3 * cStride + L, accumulate);
                for (int x = 0, bb = bOff + h; x < inner; x++, bb += KT) {
                    FloatVector b0 = FloatVector.fromArray(F, b, bb);
                    FloatVector b1 = FloatVector.fromArray(F, b, bb + L);
                    FloatVector e = FloatVector.broadcast(F, a[a0 + x]);
                    c00 = b0.fma(e, c00);
                    c01 = b1.fma(e, c01);
                    e = FloatVector.broadcast(F, a[a1 + x]);
                    c10 = b0.fma(e, c10);
                    c11 = b1.fma(e, c11);
                    e = FloatVector.broadcast(F, a[a2 + x]);
                    c20 = b0.fma(e, c20);
                    c21 = b1.fma(e, c21);
                    e = FloatVector.broadcast(F, a[a3 + x]);
                    c30 = b0.fma(e, c30);
                    c31 = b1.fma(e, c31);
                }
                c00.intoArray(c, o);
                c01.intoArray(c, o + L);
                c10.intoArray(c, o + cStride);
                c11.intoArray(c, o + cStride + L);
                c20.intoArray(c, o + 2 * cStride);
                c21.intoArray(c, o + 2 * cStride + L);
                c30.intoArray(c, o + 3 * cStride);
                c31.intoArray(c, o + 3 * cStride + L);
            }
        }
    }

    /**
     * {@code c[rows][width] += a[rows][inner] b[inner][width]} with {@code a}'s rows KT apart from 0, {@code b} from
     * {@code bOff} and {@code c} from {@code cOff}; {@code rows} is a multiple of 4 and {@code width} of the lanes.
     */
    public static void multiplyAdd(
            float[] a, int rows, int inner, float[] b, int bOff, int width, float[] c, int cOff) {
        int t = 0;
        if (WIDE_SCORES && width % (4 * L) == 0) {
            // The backward's gradient products in the forward's 6 x 4 blocks (alphas of 1), in pairs so that the rows
            // left for the 4-row blocks stay a multiple of 4; each element sums its keys in the same order.
            for (; rows - t >= 12; t += 12) {
                accumulateSix(a, 0, t, inner, b, bOff, width, width, c, cOff, ONES, 0);
                accumulateSix(a, 0, t + 6, inner, b, bOff, width, width, c, cOff, ONES, 0);
            }
        }
        for (; t < rows; t += 4) {
            // c += a b is accumulate's block with alphas of 1 (exact): a's rows are KT apart like p's.
            accumulateRows(a, t * KT, inner, b, bOff, width, width, c, cOff + t * width, width, ONES, 0, NARROW);
        }
    }

    /**
     * {@code o[t] = alpha[t] * o[t] + sum_j p[t][pCol + j] * v[j]} for {@code t < rows}, {@code j < keys}: value row
     * {@code j} at {@code v[vOff + j * vStride, +dvp)}, probabilities KT apart, output rows {@code dvp} apart.
     */
    public static void accumulate(
            float[] p,
            int rows,
            int keys,
            int pCol,
            float[] v,
            int vOff,
            int vStride,
            int dvp,
            float[] o,
            float[] alpha) {
        accumulate(p, 0, rows, keys, pCol, v, vOff, vStride, dvp, o, alpha);
    }

    /** {@link #accumulate} over rows {@code [t0, rows)}, {@code t0} a multiple of 4. */
    private static void accumulate(
            float[] p,
            int t0,
            int rows,
            int keys,
            int pCol,
            float[] v,
            int vOff,
            int vStride,
            int dvp,
            float[] o,
            float[] alpha) {
        // The block is written out here rather than called (as multiplyAdd does): on decode's lone group of 4 rows
        // the call to accumulateWide, compiled on its own, cost 15 to 30 % of a decode step.
        for (int t = t0; t < rows; t += 4) {
            int p0 = t * KT + pCol;
            int o0 = t * dvp;
            int oStride = dvp;
            // A lone group of 4 rows (decode) streams each value row from memory once per pass: it keeps the
            // wide block's 4 passes even where that spills; with more rows the values come from L1.
            // Value rows narrower than the wide block (D = 32 at 512 bits) take 4 x 2 blocks too: one vector at a
            // time would pay 4 broadcasts and a load for every 4 FMAs.
            boolean pairs = NARROW ? rows > 4 : dvp < 4 * L;
            int c = pairs ? accumulatePairs(p, p0, keys, v, vOff, vStride, dvp, o, o0, dvp, alpha, t) : 0;
            int p1 = p0 + KT;
            int p2 = p1 + KT;
            int p3 = p2 + KT;
            int o1 = o0 + oStride;
            int o2 = o1 + oStride;
            int o3 = o2 + oStride;
            float al0 = alpha[t], al1 = alpha[t + 1], al2 = alpha[t + 2], al3 = alpha[t + 3];
            for (; c + 4 * L <= dvp; c += 4 * L) {
                FloatVector a00 = FloatVector.fromArray(F, o, o0 + c).mul(al0);
                FloatVector a01 = FloatVector.fromArray(F, o, o0 + c + L).mul(al0);
                FloatVector a02 = FloatVector.fromArray(F, o, o0 + c + 2 * L).mul(al0);
                FloatVector a03 = FloatVector.fromArray(F, o, o0 + c + 3 * L).mul(al0);
                FloatVector a10 = FloatVector.fromArray(F, o, o1 + c).mul(al1);
                FloatVector a11 = FloatVector.fromArray(F, o, o1 + c + L).mul(al1);
                FloatVector a12 = FloatVector.fromArray(F, o, o1 + c + 2 * L).mul(al1);
                FloatVector a13 = FloatVector.fromArray(F, o, o1 + c + 3 * L).mul(al1);
                FloatVector a20 = FloatVector.fromArray(F, o, o2 + c).mul(al2);
                FloatVector a21 = FloatVector.fromArray(F, o, o2 + c + L).mul(al2);
                FloatVector a22 = FloatVector.fromArray(F, o, o2 + c + 2 * L).mul(al2);
                FloatVector a23 = FloatVector.fromArray(F, o, o2 + c + 3 * L).mul(al2);
                FloatVector a30 = FloatVector.fromArray(F, o, o3 + c).mul(al3);
                FloatVector a31 = FloatVector.fromArray(F, o, o3 + c + L).mul(al3);
                FloatVector a32 = FloatVector.fromArray(F, o, o3 + c + 2 * L).mul(al3);
                FloatVector a33 = FloatVector.fromArray(F, o, o3 + c + 3 * L).mul(al3);
                for (int j = 0, vb = vOff + c; j < keys; j++, vb += vStride) {
                    FloatVector v0 = FloatVector.fromArray(F, v, vb);
                    FloatVector v1 = FloatVector.fromArray(F, v, vb + L);
                    FloatVector v2 = FloatVector.fromArray(F, v, vb + 2 * L);
                    FloatVector v3 = FloatVector.fromArray(F, v, vb + 3 * L);
                    FloatVector b = FloatVector.broadcast(F, p[p0 + j]);
                    a00 = v0.fma(b, a00);
                    a01 = v1.fma(b, a01);
                    a02 = v2.fma(b, a02);
                    a03 = v3.fma(b, a03);
                    b = FloatVector.broadcast(F, p[p1 + j]);
                    a10 = v0.fma(b, a10);
                    a11 = v1.fma(b, a11);
                    a12 = v2.fma(b, a12);
                    a13 = v3.fma(b, a13);
                    b = FloatVector.broadcast(F, p[p2 + j]);
                    a20 = v0.fma(b, a20);
                    a21 = v1.fma(b, a21);
                    a22 = v2.fma(b, a22);
                    a23 = v3.fma(b, a23);
                    b = FloatVector.broadcast(F, p[p3 + j]);
                    a30 = v0.fma(b, a30);
                    a31 = v1.fma(b, a31);
                    a32 = v2.fma(b, a32);
                    a33 = v3.fma(b, a33);
                }
                a00.intoArray(o, o0 + c);
                a01.intoArray(o, o0 + c + L);
                a02.intoArray(o, o0 + c + 2 * L);
                a03.intoArray(o, o0 + c + 3 * L);
                a10.intoArray(o, o1 + c);
                a11.intoArray(o, o1 + c + L);
                a12.intoArray(o, o1 + c + 2 * L);
                a13.intoArray(o, o1 + c + 3 * L);
                a20.intoArray(o, o2 + c);
                a21.intoArray(o, o2 + c + L);
                a22.intoArray(o, o2 + c + 2 * L);
                a23.intoArray(o, o2 + c + 3 * L);
                a30.intoArray(o, o3 + c);
                a31.intoArray(o, o3 + c + L);
                a32.intoArray(o, o3 + c + 2 * L);
                a33.intoArray(o, o3 + c + 3 * L);
            }
            // Remaining value columns (dvp not a multiple of 4 vectors): one vector at a time.
            for (; c < dvp; c += L) {
                FloatVector a0 = FloatVector.fromArray(F, o, o0 + c).mul(al0);
                FloatVector a1 = FloatVector.fromArray(F, o, o1 + c).mul(al1);
                FloatVector a2 = FloatVector.fromArray(F, o, o2 + c).mul(al2);
                FloatVector a3 = FloatVector.fromArray(F, o, o3 + c).mul(al3);
                for (int j = 0, vb = vOff + c; j < keys; j++, vb += vStride) {
                    FloatVector v0 = FloatVector.fromArray(F, v, vb);
                    a0 = v0.fma(FloatVector.broadcast(F, p[p0 + j]), a0);
                    a1 = v0.fma(FloatVector.broadcast(F, p[p1 + j]), a1);
                    a2 = v0.fma(FloatVector.broadcast(F, p[p2 + j]), a2);
                    a3 = v0.fma(FloatVector.broadcast(F, p[p3 + j]), a3);
                }
                a0.intoArray(o, o0 + c);
                a1.intoArray(o, o1 + c);
                a2.intoArray(o, o2 + c);
                a3.intoArray(o, o3 + c);
            }
        }
    }

    /**
     * The forward's {@code o[t] = alpha[t] * o[t] + sum_j p[t][j] * v[j]} for {@code t < rows}, {@code j < keys} over
     * a value block ({@code v[j]} at {@code vOff + j * vStride}: the packed block or the value tensor's own array;
     * probabilities KT apart from 0, output rows {@code dvp} apart): {@link #accumulate}'s sums in larger register blocks where the 32 AVX-512 registers hold them
     * (6 x 4 for rows of whole 4-vector blocks, 8 x 2 for rows of 2 vectors), the remaining rows in its 4-row
     * blocks. Each output element sums its keys in the same order in every block, so the bits are
     * {@link #accumulate}'s. Rows {@code [from, rows)} only, both multiples of 4: the rows before {@code from} are
     * not read or written.
     */
    public static void accumulateTile(
            float[] p,
            int from,
            int rows,
            int keys,
            float[] v,
            int vOff,
            int vStride,
            int dvp,
            float[] o,
            float[] alpha) {
        accumulateTile(p, 0, from, rows, keys, v, vOff, vStride, dvp, o, alpha);
    }

    /**
     * {@link #accumulateTile(float[], int, int, int, float[], int, int, int, float[], float[])} with row {@code t}'s
     * probabilities at {@code p[pOff + t * KT]} ({@code pOff} may be negative, the index not): a wide key block's
     * panel of probabilities for a group of rows ({@link WideBlocks}).
     */
    public static void accumulateTile(
            float[] p,
            int pOff,
            int from,
            int rows,
            int keys,
            float[] v,
            int vOff,
            int vStride,
            int dvp,
            float[] o,
            float[] alpha) {
        int t = from;
        if (WIDE_SCORES && dvp == 2 * L) {
            for (; rows - t >= 8; t += 8) {
                accumulateEight(p, pOff + t * KT, keys, v, vOff, vStride, dvp, o, t * dvp, alpha, t);
            }
            for (; t < rows; t += 4) {
                accumulatePairs(p, pOff + t * KT, keys, v, vOff, vStride, dvp, o, t * dvp, dvp, alpha, t);
            }
        } else if (WIDE_SCORES && dvp % (4 * L) == 0) {
            // 6-row blocks in pairs, so the rows left for accumulate's 4-row blocks stay a multiple of 4.
            for (; rows - t >= 12; t += 12) {
                accumulateSix(p, pOff, t, keys, v, vOff, vStride, dvp, o, 0, alpha, t);
                accumulateSix(p, pOff, t + 6, keys, v, vOff, vStride, dvp, o, 0, alpha, t + 6);
            }
            accumulate(p, t, rows, keys, pOff, v, vOff, vStride, dvp, o, alpha);
        } else {
            accumulate(p, t, rows, keys, pOff, v, vOff, vStride, dvp, o, alpha);
        }
    }

    /**
     * Rows {@code t..t+5} of {@link #accumulateTile} for value rows of whole 4-vector blocks, in 6 x 4 blocks (24
     * accumulators, 4 value vectors and a broadcast: 29 of the 32 AVX-512 registers): each loaded value vector
     * feeds 6 FMAs instead of 4, as {@link #multiplySix} does for the scores. Each output element starts from
     * {@code alpha o} and adds its keys in order, as in {@link #accumulate}'s 4 x 4 block. The inner loop
     * addresses the 6 probability rows from one index (rows KT apart, a constant), so that its integer registers
     * fit x86's 16 with the loop's bounds.
     */
    private static void accumulateSix(
            float[] p,
            int pOff,
            int t,
            int keys,
            float[] v,
            int vOff,
            int vStride,
            int dvp,
            float[] o,
            int oOff,
            float[] alpha,
            int alphaAt) {
        int o0 = oOff + t * dvp;
        for (int c = 0; c < dvp; c += 4 * L) {
            FloatVector a00 = FloatVector.fromArray(F, o, o0 + 0 * dvp + c).mul(alpha[alphaAt + 0]);
            FloatVector a01 = FloatVector.fromArray(F, o, o0 + 0 * dvp + c + L).mul(alpha[alphaAt + 0]);
            FloatVector a02 =
                    FloatVector.fromArray(F, o, o0 + 0 * dvp + c + 2 * L).mul(alpha[alphaAt + 0]);
            FloatVector a03 =
                    FloatVector.fromArray(F, o, o0 + 0 * dvp + c + 3 * L).mul(alpha[alphaAt + 0]);
            FloatVector a10 = FloatVector.fromArray(F, o, o0 + 1 * dvp + c).mul(alpha[alphaAt + 1]);
            FloatVector a11 = FloatVector.fromArray(F, o, o0 + 1 * dvp + c + L).mul(alpha[alphaAt + 1]);
            FloatVector a12 =
                    FloatVector.fromArray(F, o, o0 + 1 * dvp + c + 2 * L).mul(alpha[alphaAt + 1]);
            FloatVector a13 =
                    FloatVector.fromArray(F, o, o0 + 1 * dvp + c + 3 * L).mul(alpha[alphaAt + 1]);
            FloatVector a20 = FloatVector.fromArray(F, o, o0 + 2 * dvp + c).mul(alpha[alphaAt + 2]);
            FloatVector a21 = FloatVector.fromArray(F, o, o0 + 2 * dvp + c + L).mul(alpha[alphaAt + 2]);
            FloatVector a22 =
                    FloatVector.fromArray(F, o, o0 + 2 * dvp + c + 2 * L).mul(alpha[alphaAt + 2]);
            FloatVector a23 =
                    FloatVector.fromArray(F, o, o0 + 2 * dvp + c + 3 * L).mul(alpha[alphaAt + 2]);
            FloatVector a30 = FloatVector.fromArray(F, o, o0 + 3 * dvp + c).mul(alpha[alphaAt + 3]);
            FloatVector a31 = FloatVector.fromArray(F, o, o0 + 3 * dvp + c + L).mul(alpha[alphaAt + 3]);
            FloatVector a32 =
                    FloatVector.fromArray(F, o, o0 + 3 * dvp + c + 2 * L).mul(alpha[alphaAt + 3]);
            FloatVector a33 =
                    FloatVector.fromArray(F, o, o0 + 3 * dvp + c + 3 * L).mul(alpha[alphaAt + 3]);
            FloatVector a40 = FloatVector.fromArray(F, o, o0 + 4 * dvp + c).mul(alpha[alphaAt + 4]);
            FloatVector a41 = FloatVector.fromArray(F, o, o0 + 4 * dvp + c + L).mul(alpha[alphaAt + 4]);
            FloatVector a42 =
                    FloatVector.fromArray(F, o, o0 + 4 * dvp + c + 2 * L).mul(alpha[alphaAt + 4]);
            FloatVector a43 =
                    FloatVector.fromArray(F, o, o0 + 4 * dvp + c + 3 * L).mul(alpha[alphaAt + 4]);
            FloatVector a50 = FloatVector.fromArray(F, o, o0 + 5 * dvp + c).mul(alpha[alphaAt + 5]);
            FloatVector a51 = FloatVector.fromArray(F, o, o0 + 5 * dvp + c + L).mul(alpha[alphaAt + 5]);
            FloatVector a52 =
                    FloatVector.fromArray(F, o, o0 + 5 * dvp + c + 2 * L).mul(alpha[alphaAt + 5]);
            FloatVector a53 =
                    FloatVector.fromArray(F, o, o0 + 5 * dvp + c + 3 * L).mul(alpha[alphaAt + 5]);
            for (int j = 0, pj = pOff + t * KT, vb = vOff + c; j < keys; j++, pj++, vb += vStride) {
                FloatVector v0 = FloatVector.fromArray(F, v, vb);
                FloatVector v1 = FloatVector.fromArray(F, v, vb + L);
                FloatVector v2 = FloatVector.fromArray(F, v, vb + 2 * L);
                FloatVector v3 = FloatVector.fromArray(F, v, vb + 3 * L);
                FloatVector b = FloatVector.broadcast(F, p[pj]);
                a00 = v0.fma(b, a00);
                a01 = v1.fma(b, a01);
                a02 = v2.fma(b, a02);
                a03 = v3.fma(b, a03);
                b = FloatVector.broadcast(F, p[pj + KT]);
                a10 = v0.fma(b, a10);
                a11 = v1.fma(b, a11);
                a12 = v2.fma(b, a12);
                a13 = v3.fma(b, a13);
                b = FloatVector.broadcast(F, p[pj + 2 * KT]);
                a20 = v0.fma(b, a20);
                a21 = v1.fma(b, a21);
                a22 = v2.fma(b, a22);
                a23 = v3.fma(b, a23);
                b = FloatVector.broadcast(F, p[pj + 3 * KT]);
                a30 = v0.fma(b, a30);
                a31 = v1.fma(b, a31);
                a32 = v2.fma(b, a32);
                a33 = v3.fma(b, a33);
                b = FloatVector.broadcast(F, p[pj + 4 * KT]);
                a40 = v0.fma(b, a40);
                a41 = v1.fma(b, a41);
                a42 = v2.fma(b, a42);
                a43 = v3.fma(b, a43);
                b = FloatVector.broadcast(F, p[pj + 5 * KT]);
                a50 = v0.fma(b, a50);
                a51 = v1.fma(b, a51);
                a52 = v2.fma(b, a52);
                a53 = v3.fma(b, a53);
            }
            a00.intoArray(o, o0 + 0 * dvp + c);
            a01.intoArray(o, o0 + 0 * dvp + c + L);
            a02.intoArray(o, o0 + 0 * dvp + c + 2 * L);
            a03.intoArray(o, o0 + 0 * dvp + c + 3 * L);
            a10.intoArray(o, o0 + 1 * dvp + c);
            a11.intoArray(o, o0 + 1 * dvp + c + L);
            a12.intoArray(o, o0 + 1 * dvp + c + 2 * L);
            a13.intoArray(o, o0 + 1 * dvp + c + 3 * L);
            a20.intoArray(o, o0 + 2 * dvp + c);
            a21.intoArray(o, o0 + 2 * dvp + c + L);
            a22.intoArray(o, o0 + 2 * dvp + c + 2 * L);
            a23.intoArray(o, o0 + 2 * dvp + c + 3 * L);
            a30.intoArray(o, o0 + 3 * dvp + c);
            a31.intoArray(o, o0 + 3 * dvp + c + L);
            a32.intoArray(o, o0 + 3 * dvp + c + 2 * L);
            a33.intoArray(o, o0 + 3 * dvp + c + 3 * L);
            a40.intoArray(o, o0 + 4 * dvp + c);
            a41.intoArray(o, o0 + 4 * dvp + c + L);
            a42.intoArray(o, o0 + 4 * dvp + c + 2 * L);
            a43.intoArray(o, o0 + 4 * dvp + c + 3 * L);
            a50.intoArray(o, o0 + 5 * dvp + c);
            a51.intoArray(o, o0 + 5 * dvp + c + L);
            a52.intoArray(o, o0 + 5 * dvp + c + 2 * L);
            a53.intoArray(o, o0 + 5 * dvp + c + 3 * L);
        }
    }

    /**
     * Rows {@code t..t+7} of {@link #accumulateTile} in 8 x 2 blocks (16 accumulators, 2 value vectors and a
     * broadcast) for value rows of 2 vectors (D = 32 at 512 bits): twice the rows of the 4 x 2 block per loaded
     * value row.
     */
    private static void accumulateEight(
            float[] p,
            int p0,
            int keys,
            float[] v,
            int vOff,
            int vStride,
            int dvp,
            float[] o,
            int o0,
            float[] alpha,
            int t) {
        int p0r = p0;
        int p1r = p0 + 1 * KT;
        int p2r = p0 + 2 * KT;
        int p3r = p0 + 3 * KT;
        int p4r = p0 + 4 * KT;
        int p5r = p0 + 5 * KT;
        int p6r = p0 + 6 * KT;
        int p7r = p0 + 7 * KT;
        int o0r = o0;
        int o1r = o0 + 1 * dvp;
        int o2r = o0 + 2 * dvp;
        int o3r = o0 + 3 * dvp;
        int o4r = o0 + 4 * dvp;
        int o5r = o0 + 5 * dvp;
        int o6r = o0 + 6 * dvp;
        int o7r = o0 + 7 * dvp;
        float al0 = alpha[t + 0];
        float al1 = alpha[t + 1];
        float al2 = alpha[t + 2];
        float al3 = alpha[t + 3];
        float al4 = alpha[t + 4];
        float al5 = alpha[t + 5];
        float al6 = alpha[t + 6];
        float al7 = alpha[t + 7];
        for (int c = 0; c + 2 * L <= dvp; c += 2 * L) {
            FloatVector a00 = FloatVector.fromArray(F, o, o0r + c).mul(al0);
            FloatVector a01 = FloatVector.fromArray(F, o, o0r + c + 1 * L).mul(al0);
            FloatVector a10 = FloatVector.fromArray(F, o, o1r + c).mul(al1);
            FloatVector a11 = FloatVector.fromArray(F, o, o1r + c + 1 * L).mul(al1);
            FloatVector a20 = FloatVector.fromArray(F, o, o2r + c).mul(al2);
            FloatVector a21 = FloatVector.fromArray(F, o, o2r + c + 1 * L).mul(al2);
            FloatVector a30 = FloatVector.fromArray(F, o, o3r + c).mul(al3);
            FloatVector a31 = FloatVector.fromArray(F, o, o3r + c + 1 * L).mul(al3);
            FloatVector a40 = FloatVector.fromArray(F, o, o4r + c).mul(al4);
            FloatVector a41 = FloatVector.fromArray(F, o, o4r + c + 1 * L).mul(al4);
            FloatVector a50 = FloatVector.fromArray(F, o, o5r + c).mul(al5);
            FloatVector a51 = FloatVector.fromArray(F, o, o5r + c + 1 * L).mul(al5);
            FloatVector a60 = FloatVector.fromArray(F, o, o6r + c).mul(al6);
            FloatVector a61 = FloatVector.fromArray(F, o, o6r + c + 1 * L).mul(al6);
            FloatVector a70 = FloatVector.fromArray(F, o, o7r + c).mul(al7);
            FloatVector a71 = FloatVector.fromArray(F, o, o7r + c + 1 * L).mul(al7);
            for (int j = 0, vb = vOff + c; j < keys; j++, vb += vStride) {
                FloatVector v0 = FloatVector.fromArray(F, v, vb);
                FloatVector v1 = FloatVector.fromArray(F, v, vb + 1 * L);
                FloatVector b = FloatVector.broadcast(F, p[p0r + j]);
                a00 = v0.fma(b, a00);
                a01 = v1.fma(b, a01);
                b = FloatVector.broadcast(F, p[p1r + j]);
                a10 = v0.fma(b, a10);
                a11 = v1.fma(b, a11);
                b = FloatVector.broadcast(F, p[p2r + j]);
                a20 = v0.fma(b, a20);
                a21 = v1.fma(b, a21);
                b = FloatVector.broadcast(F, p[p3r + j]);
                a30 = v0.fma(b, a30);
                a31 = v1.fma(b, a31);
                b = FloatVector.broadcast(F, p[p4r + j]);
                a40 = v0.fma(b, a40);
                a41 = v1.fma(b, a41);
                b = FloatVector.broadcast(F, p[p5r + j]);
                a50 = v0.fma(b, a50);
                a51 = v1.fma(b, a51);
                b = FloatVector.broadcast(F, p[p6r + j]);
                a60 = v0.fma(b, a60);
                a61 = v1.fma(b, a61);
                b = FloatVector.broadcast(F, p[p7r + j]);
                a70 = v0.fma(b, a70);
                a71 = v1.fma(b, a71);
            }
            a00.intoArray(o, o0r + c);
            a01.intoArray(o, o0r + c + 1 * L);
            a10.intoArray(o, o1r + c);
            a11.intoArray(o, o1r + c + 1 * L);
            a20.intoArray(o, o2r + c);
            a21.intoArray(o, o2r + c + 1 * L);
            a30.intoArray(o, o3r + c);
            a31.intoArray(o, o3r + c + 1 * L);
            a40.intoArray(o, o4r + c);
            a41.intoArray(o, o4r + c + 1 * L);
            a50.intoArray(o, o5r + c);
            a51.intoArray(o, o5r + c + 1 * L);
            a60.intoArray(o, o6r + c);
            a61.intoArray(o, o6r + c + 1 * L);
            a70.intoArray(o, o7r + c);
            a71.intoArray(o, o7r + c + 1 * L);
        }
    }

    /**
     * Rows {@code t..t+3} of {@link #accumulate} (and, with alphas of 1, of {@link #multiplyAdd}): probabilities
     * from {@code p0} (KT apart), output rows from {@code o0} ({@code oStride} apart), value columns
     * {@code [0, width)}; in 4 x 2 blocks first when {@code pairs}, then 4 x 4, then one vector at a time.
     */
    private static void accumulateRows(
            float[] p,
            int p0,
            int keys,
            float[] v,
            int vOff,
            int vStride,
            int width,
            float[] o,
            int o0,
            int oStride,
            float[] alpha,
            int t,
            boolean pairs) {
        int c = pairs ? accumulatePairs(p, p0, keys, v, vOff, vStride, width, o, o0, oStride, alpha, t) : 0;
        accumulateWide(p, p0, keys, v, vOff, vStride, width, o, o0, oStride, alpha, t, c);
    }

    /**
     * The 4 x 2 block of {@link #accumulate} (and, with alphas of 1, of {@link #multiplyAdd}) for rows
     * {@code t..t+3}: probabilities from {@code p0} ({@link #KT} apart), output rows from {@code o0}
     * ({@code oStride} apart), over every pair of value vectors within {@code dvp}; returns the first column it
     * did not do.
     */
    private static int accumulatePairs(
            float[] p,
            int p0,
            int keys,
            float[] v,
            int vOff,
            int vStride,
            int dvp,
            float[] o,
            int o0,
            int oStride,
            float[] alpha,
            int t) {
        int p1 = p0 + KT;
        int p2 = p1 + KT;
        int p3 = p2 + KT;
        int o1 = o0 + oStride;
        int o2 = o1 + oStride;
        int o3 = o2 + oStride;
        float al0 = alpha[t], al1 = alpha[t + 1], al2 = alpha[t + 2], al3 = alpha[t + 3];
        int c = 0;
        for (; c + 2 * L <= dvp; c += 2 * L) {
            FloatVector a00 = FloatVector.fromArray(F, o, o0 + c).mul(al0);
            FloatVector a01 = FloatVector.fromArray(F, o, o0 + c + L).mul(al0);
            FloatVector a10 = FloatVector.fromArray(F, o, o1 + c).mul(al1);
            FloatVector a11 = FloatVector.fromArray(F, o, o1 + c + L).mul(al1);
            FloatVector a20 = FloatVector.fromArray(F, o, o2 + c).mul(al2);
            FloatVector a21 = FloatVector.fromArray(F, o, o2 + c + L).mul(al2);
            FloatVector a30 = FloatVector.fromArray(F, o, o3 + c).mul(al3);
            FloatVector a31 = FloatVector.fromArray(F, o, o3 + c + L).mul(al3);
            for (int j = 0, vb = vOff + c; j < keys; j++, vb += vStride) {
                FloatVector v0 = FloatVector.fromArray(F, v, vb);
                FloatVector v1 = FloatVector.fromArray(F, v, vb + L);
                FloatVector b = FloatVector.broadcast(F, p[p0 + j]);
                a00 = v0.fma(b, a00);
                a01 = v1.fma(b, a01);
                b = FloatVector.broadcast(F, p[p1 + j]);
                a10 = v0.fma(b, a10);
                a11 = v1.fma(b, a11);
                b = FloatVector.broadcast(F, p[p2 + j]);
                a20 = v0.fma(b, a20);
                a21 = v1.fma(b, a21);
                b = FloatVector.broadcast(F, p[p3 + j]);
                a30 = v0.fma(b, a30);
                a31 = v1.fma(b, a31);
            }
            a00.intoArray(o, o0 + c);
            a01.intoArray(o, o0 + c + L);
            a10.intoArray(o, o1 + c);
            a11.intoArray(o, o1 + c + L);
            a20.intoArray(o, o2 + c);
            a21.intoArray(o, o2 + c + L);
            a30.intoArray(o, o3 + c);
            a31.intoArray(o, o3 + c + L);
        }
        return c;
    }

    /**
     * {@link #accumulateRows} from column {@code c} on: 4 x 4 blocks, then the columns left (width not a multiple
     * of 4 vectors) one vector at a time.
     */
    private static void accumulateWide(
            float[] p,
            int p0,
            int keys,
            float[] v,
            int vOff,
            int vStride,
            int dvp,
            float[] o,
            int o0,
            int oStride,
            float[] alpha,
            int t,
            int c) {
        int p1 = p0 + KT;
        int p2 = p1 + KT;
        int p3 = p2 + KT;
        int o1 = o0 + oStride;
        int o2 = o1 + oStride;
        int o3 = o2 + oStride;
        float al0 = alpha[t], al1 = alpha[t + 1], al2 = alpha[t + 2], al3 = alpha[t + 3];
        for (; c + 4 * L <= dvp; c += 4 * L) {
            FloatVector a00 = FloatVector.fromArray(F, o, o0 + c).mul(al0);
            FloatVector a01 = FloatVector.fromArray(F, o, o0 + c + L).mul(al0);
            FloatVector a02 = FloatVector.fromArray(F, o, o0 + c + 2 * L).mul(al0);
            FloatVector a03 = FloatVector.fromArray(F, o, o0 + c + 3 * L).mul(al0);
            FloatVector a10 = FloatVector.fromArray(F, o, o1 + c).mul(al1);
            FloatVector a11 = FloatVector.fromArray(F, o, o1 + c + L).mul(al1);
            FloatVector a12 = FloatVector.fromArray(F, o, o1 + c + 2 * L).mul(al1);
            FloatVector a13 = FloatVector.fromArray(F, o, o1 + c + 3 * L).mul(al1);
            FloatVector a20 = FloatVector.fromArray(F, o, o2 + c).mul(al2);
            FloatVector a21 = FloatVector.fromArray(F, o, o2 + c + L).mul(al2);
            FloatVector a22 = FloatVector.fromArray(F, o, o2 + c + 2 * L).mul(al2);
            FloatVector a23 = FloatVector.fromArray(F, o, o2 + c + 3 * L).mul(al2);
            FloatVector a30 = FloatVector.fromArray(F, o, o3 + c).mul(al3);
            FloatVector a31 = FloatVector.fromArray(F, o, o3 + c + L).mul(al3);
            FloatVector a32 = FloatVector.fromArray(F, o, o3 + c + 2 * L).mul(al3);
            FloatVector a33 = FloatVector.fromArray(F, o, o3 + c + 3 * L).mul(al3);
            for (int j = 0, vb = vOff + c; j < keys; j++, vb += vStride) {
                FloatVector v0 = FloatVector.fromArray(F, v, vb);
                FloatVector v1 = FloatVector.fromArray(F, v, vb + L);
                FloatVector v2 = FloatVector.fromArray(F, v, vb + 2 * L);
                FloatVector v3 = FloatVector.fromArray(F, v, vb + 3 * L);
                FloatVector b = FloatVector.broadcast(F, p[p0 + j]);
                a00 = v0.fma(b, a00);
                a01 = v1.fma(b, a01);
                a02 = v2.fma(b, a02);
                a03 = v3.fma(b, a03);
                b = FloatVector.broadcast(F, p[p1 + j]);
                a10 = v0.fma(b, a10);
                a11 = v1.fma(b, a11);
                a12 = v2.fma(b, a12);
                a13 = v3.fma(b, a13);
                b = FloatVector.broadcast(F, p[p2 + j]);
                a20 = v0.fma(b, a20);
                a21 = v1.fma(b, a21);
                a22 = v2.fma(b, a22);
                a23 = v3.fma(b, a23);
                b = FloatVector.broadcast(F, p[p3 + j]);
                a30 = v0.fma(b, a30);
                a31 = v1.fma(b, a31);
                a32 = v2.fma(b, a32);
                a33 = v3.fma(b, a33);
            }
            a00.intoArray(o, o0 + c);
            a01.intoArray(o, o0 + c + L);
            a02.intoArray(o, o0 + c + 2 * L);
            a03.intoArray(o, o0 + c + 3 * L);
            a10.intoArray(o, o1 + c);
            a11.intoArray(o, o1 + c + L);
            a12.intoArray(o, o1 + c + 2 * L);
            a13.intoArray(o, o1 + c + 3 * L);
            a20.intoArray(o, o2 + c);
            a21.intoArray(o, o2 + c + L);
            a22.intoArray(o, o2 + c + 2 * L);
            a23.intoArray(o, o2 + c + 3 * L);
            a30.intoArray(o, o3 + c);
            a31.intoArray(o, o3 + c + L);
            a32.intoArray(o, o3 + c + 2 * L);
            a33.intoArray(o, o3 + c + 3 * L);
        }
        // Remaining value columns (dvp not a multiple of 4 vectors): one vector at a time.
        for (; c < dvp; c += L) {
            FloatVector a0 = FloatVector.fromArray(F, o, o0 + c).mul(al0);
            FloatVector a1 = FloatVector.fromArray(F, o, o1 + c).mul(al1);
            FloatVector a2 = FloatVector.fromArray(F, o, o2 + c).mul(al2);
            FloatVector a3 = FloatVector.fromArray(F, o, o3 + c).mul(al3);
            for (int j = 0, vb = vOff + c; j < keys; j++, vb += vStride) {
                FloatVector v0 = FloatVector.fromArray(F, v, vb);
                a0 = v0.fma(FloatVector.broadcast(F, p[p0 + j]), a0);
                a1 = v0.fma(FloatVector.broadcast(F, p[p1 + j]), a1);
                a2 = v0.fma(FloatVector.broadcast(F, p[p2 + j]), a2);
                a3 = v0.fma(FloatVector.broadcast(F, p[p3 + j]), a3);
            }
            a0.intoArray(o, o0 + c);
            a1.intoArray(o, o1 + c);
            a2.intoArray(o, o2 + c);
            a3.intoArray(o, o3 + c);
        }
    }

    /**
     * {@link #accumulate(float[], int, int, int, float[], int, int, int, float[], float[])} with value row {@code j}
     * at byte {@code vOff + j * vStride} of {@code v}. The same loop over other memory, kept apart because C2
     * compiles each form to plain vector loads; a test holds the two to bitwise-equal results.
     */
    public static void accumulate(
            float[] p,
            int rows,
            int keys,
            int pCol,
            MemorySegment v,
            long vOff,
            long vStride,
            int dvp,
            float[] o,
            float[] alpha) {
        // As the array version, value rows loaded from the segment.
        for (int t = 0; t < rows; t += 4) {
            int p0 = t * KT + pCol;
            int p1 = p0 + KT;
            int p2 = p1 + KT;
            int p3 = p2 + KT;
            int o0 = t * dvp;
            int o1 = o0 + dvp;
            int o2 = o1 + dvp;
            int o3 = o2 + dvp;
            float al0 = alpha[t], al1 = alpha[t + 1], al2 = alpha[t + 2], al3 = alpha[t + 3];
            int c = 0;
            for (; c + 4 * L <= dvp; c += 4 * L) {
                FloatVector a00 = FloatVector.fromArray(F, o, o0 + c).mul(al0);
                FloatVector a01 = FloatVector.fromArray(F, o, o0 + c + L).mul(al0);
                FloatVector a02 = FloatVector.fromArray(F, o, o0 + c + 2 * L).mul(al0);
                FloatVector a03 = FloatVector.fromArray(F, o, o0 + c + 3 * L).mul(al0);
                FloatVector a10 = FloatVector.fromArray(F, o, o1 + c).mul(al1);
                FloatVector a11 = FloatVector.fromArray(F, o, o1 + c + L).mul(al1);
                FloatVector a12 = FloatVector.fromArray(F, o, o1 + c + 2 * L).mul(al1);
                FloatVector a13 = FloatVector.fromArray(F, o, o1 + c + 3 * L).mul(al1);
                FloatVector a20 = FloatVector.fromArray(F, o, o2 + c).mul(al2);
                FloatVector a21 = FloatVector.fromArray(F, o, o2 + c + L).mul(al2);
                FloatVector a22 = FloatVector.fromArray(F, o, o2 + c + 2 * L).mul(al2);
                FloatVector a23 = FloatVector.fromArray(F, o, o2 + c + 3 * L).mul(al2);
                FloatVector a30 = FloatVector.fromArray(F, o, o3 + c).mul(al3);
                FloatVector a31 = FloatVector.fromArray(F, o, o3 + c + L).mul(al3);
                FloatVector a32 = FloatVector.fromArray(F, o, o3 + c + 2 * L).mul(al3);
                FloatVector a33 = FloatVector.fromArray(F, o, o3 + c + 3 * L).mul(al3);
                long vb = vOff + (long) c * Float.BYTES;
                for (int j = 0; j < keys; j++, vb += vStride) {
                    FloatVector v0 = FloatVector.fromMemorySegment(F, v, vb, NATIVE);
                    FloatVector v1 = FloatVector.fromMemorySegment(F, v, vb + LANE_BYTES, NATIVE);
                    FloatVector v2 = FloatVector.fromMemorySegment(F, v, vb + 2 * LANE_BYTES, NATIVE);
                    FloatVector v3 = FloatVector.fromMemorySegment(F, v, vb + 3 * LANE_BYTES, NATIVE);
                    FloatVector b = FloatVector.broadcast(F, p[p0 + j]);
                    a00 = v0.fma(b, a00);
                    a01 = v1.fma(b, a01);
                    a02 = v2.fma(b, a02);
                    a03 = v3.fma(b, a03);
                    b = FloatVector.broadcast(F, p[p1 + j]);
                    a10 = v0.fma(b, a10);
                    a11 = v1.fma(b, a11);
                    a12 = v2.fma(b, a12);
                    a13 = v3.fma(b, a13);
                    b = FloatVector.broadcast(F, p[p2 + j]);
                    a20 = v0.fma(b, a20);
                    a21 = v1.fma(b, a21);
                    a22 = v2.fma(b, a22);
                    a23 = v3.fma(b, a23);
                    b = FloatVector.broadcast(F, p[p3 + j]);
                    a30 = v0.fma(b, a30);
                    a31 = v1.fma(b, a31);
                    a32 = v2.fma(b, a32);
                    a33 = v3.fma(b, a33);
                }
                a00.intoArray(o, o0 + c);
                a01.intoArray(o, o0 + c + L);
                a02.intoArray(o, o0 + c + 2 * L);
                a03.intoArray(o, o0 + c + 3 * L);
                a10.intoArray(o, o1 + c);
                a11.intoArray(o, o1 + c + L);
                a12.intoArray(o, o1 + c + 2 * L);
                a13.intoArray(o, o1 + c + 3 * L);
                a20.intoArray(o, o2 + c);
                a21.intoArray(o, o2 + c + L);
                a22.intoArray(o, o2 + c + 2 * L);
                a23.intoArray(o, o2 + c + 3 * L);
                a30.intoArray(o, o3 + c);
                a31.intoArray(o, o3 + c + L);
                a32.intoArray(o, o3 + c + 2 * L);
                a33.intoArray(o, o3 + c + 3 * L);
            }
            // Remaining value columns (dvp not a multiple of 4 vectors): one vector at a time.
            for (; c < dvp; c += L) {
                FloatVector a0 = FloatVector.fromArray(F, o, o0 + c).mul(al0);
                FloatVector a1 = FloatVector.fromArray(F, o, o1 + c).mul(al1);
                FloatVector a2 = FloatVector.fromArray(F, o, o2 + c).mul(al2);
                FloatVector a3 = FloatVector.fromArray(F, o, o3 + c).mul(al3);
                long vb = vOff + (long) c * Float.BYTES;
                for (int j = 0; j < keys; j++, vb += vStride) {
                    FloatVector v0 = FloatVector.fromMemorySegment(F, v, vb, NATIVE);
                    a0 = v0.fma(FloatVector.broadcast(F, p[p0 + j]), a0);
                    a1 = v0.fma(FloatVector.broadcast(F, p[p1 + j]), a1);
                    a2 = v0.fma(FloatVector.broadcast(F, p[p2 + j]), a2);
                    a3 = v0.fma(FloatVector.broadcast(F, p[p3 + j]), a3);
                }
                a0.intoArray(o, o0 + c);
                a1.intoArray(o, o1 + c);
                a2.intoArray(o, o2 + c);
                a3.intoArray(o, o3 + c);
            }
        }
    }
}
