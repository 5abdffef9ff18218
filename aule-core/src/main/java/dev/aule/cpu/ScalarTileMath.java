package dev.aule.cpu;

import dev.aule.cpu.vector.BackwardRows;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/** Plain loops: the path when the Vector API module is not present. */
final class ScalarTileMath implements TileMath {
    private static final int KEY_TILE = TileConfig.SCALAR_KEY_TILE;
    /** Native-order floats, as tensors store them. */
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private static final ValueLayout.OfShort HALF = ValueLayout.JAVA_SHORT_UNALIGNED;

    @Override
    public int lanes() {
        return 1;
    }

    @Override
    public int keyTile() {
        return KEY_TILE;
    }

    @Override
    public String description() {
        return "scalar (no jdk.incubator.vector)";
    }

    // The array forms read through a heap segment: one loop per product, and the scalar path is the
    // fallback, where the segment's bounds checks do not matter.
    @Override
    public void scoresByRow(
            float[] q, int rows, int dp, float[] k, int kOff, int kStride, int keys, float[] s, int sCol) {
        scoresByRow(
                q,
                rows,
                dp,
                MemorySegment.ofArray(k),
                (long) kOff * Float.BYTES,
                (long) kStride * Float.BYTES,
                keys,
                s,
                sCol);
    }

    @Override
    public void scoresByRow(
            float[] q, int rows, int dp, MemorySegment k, long kOff, long kStride, int keys, float[] s, int sCol) {
        for (int t = 0; t < rows; t++) {
            for (int j = 0; j < keys; j++) {
                float dot = 0f;
                long row = kOff + j * kStride;
                for (int x = 0; x < dp; x++) {
                    dot = Math.fma(q[t * dp + x], k.get(FLOAT, row + (long) x * Float.BYTES), dot);
                }
                s[t * KEY_TILE + sCol + j] = dot;
            }
        }
    }

    @Override
    public void scoresByKey(
            float[] qT, int rows, int d, float[] k, int kOff, int kStride, int keys, float[] sT, float[] s, int sCol) {
        for (int t = 0; t < rows; t++) {
            for (int j = 0; j < keys; j++) {
                float dot = 0f;
                for (int x = 0; x < d; x++) {
                    dot = Math.fma(qT[x * rows + t], k[kOff + j * kStride + x], dot);
                }
                s[t * KEY_TILE + sCol + j] = dot;
            }
        }
    }

    @Override
    public void widen(MemorySegment src, long srcOff, boolean bf16, float[] dst, int dstOff, int count) {
        for (int i = 0; i < count; i++) {
            dst[dstOff + i] = HalfRows.widen(src.get(HALF, srcOff + 2L * i), bf16);
        }
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
        for (int r = 0; r < rows; r++) {
            for (int x = 0; x < dim; x++) {
                dst[dstOff + r * dstStride + x] = format.decode(codes[codeOff + r * dim + x]) * scale;
            }
        }
    }

    @Override
    public boolean codesInPlace(int dim) {
        return true;
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
        for (int r = 0, col = sCol; r < runs; col += runKeys[r], r++) {
            for (int t = 0; t < rows; t++) {
                for (int j = 0; j < runKeys[r]; j++) {
                    float dot = 0f;
                    for (int x = 0; x < dim; x++) {
                        dot = Math.fma(q[t * dp + x], format.decode(k[runOffsets[r] + x * keyStride + j]), dot);
                    }
                    s[t * KEY_TILE + col + j] = dot * runScales[r];
                }
            }
        }
    }

    /** The scalar loop reads the queries as they are. */
    @Override
    public float[] rebiasQueries(dev.aule.spi.QuantizedKv.Format format, float[] q, int n, float[] dst) {
        return null;
    }

    /** Every code is decoded the same way here, so nothing needs to be known. */
    @Override
    public long abnormalKeys(
            dev.aule.spi.QuantizedKv.Format format, byte[] codes, int off, int keyStride, int dim, int keys) {
        return 0;
    }

    /** Every code is decoded the same way here, so nothing needs to be known. */
    @Override
    public long abnormalRows(dev.aule.spi.QuantizedKv.Format format, byte[] codes, int off, int dim, int keys) {
        return 0;
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
        float[] p = sc.s;
        float[] o = sc.o;
        int dvp = sc.dvp;
        for (int t = 0; t < rows; t++) {
            int oRow = t * dvp;
            float a = alpha[t];
            for (int x = 0; x < dvp; x++) {
                o[oRow + x] *= a;
            }
            for (int j = 0; j < keys; j++) {
                float pj = p[t * KEY_TILE + pCol + j] * scale;
                for (int x = 0; x < dim; x++) {
                    o[oRow + x] = Math.fma(pj, format.decode(v[vOff + j * dim + x]), o[oRow + x]);
                }
            }
        }
    }

    @Override
    public void scale(float[] x, int off, int n, float factor) {
        for (int i = off; i < off + n; i++) {
            x[i] *= factor;
        }
    }

    @Override
    public void softcap(float[] s, int off, int n, float scale, float cap) {
        for (int i = off; i < off + n; i++) {
            s[i] = cap * (float) Math.tanh((s[i] * scale) / cap);
        }
    }

    @Override
    public void alibi(float[] s, int off, int n, float slope, float center) {
        for (int j = 0; j < n; j++) {
            s[off + j] -= slope * Math.abs(center - j);
        }
    }

    @Override
    public boolean allFinite(float[] s, int off, int n) {
        for (int i = off; i < off + n; i++) {
            if (!Float.isFinite(s[i])) {
                return false;
            }
        }
        return true;
    }

    @Override
    public float max(float[] s, int off, int n) {
        float max = Float.NEGATIVE_INFINITY;
        for (int i = off; i < off + n; i++) {
            max = Math.max(max, s[i]);
        }
        return max;
    }

    @Override
    public float expSum(float[] s, int off, int n, float max) {
        float sum = 0;
        for (int i = off; i < off + n; i++) {
            float e = (float) Math.exp(s[i] - max);
            s[i] = e;
            sum += e;
        }
        return sum;
    }

    @Override
    public void accumulate(Scratch sc, int rows, int keys, int pCol, float[] v, int vOff, int vStride, float[] alpha) {
        MemorySegment values = MemorySegment.ofArray(v);
        accumulate(sc, rows, keys, pCol, values, (long) vOff * Float.BYTES, (long) vStride * Float.BYTES, alpha);
    }

    @Override
    public void accumulate(
            Scratch sc, int rows, int keys, int pCol, MemorySegment v, long vOff, long vStride, float[] alpha) {
        float[] p = sc.s;
        float[] o = sc.o;
        int dvp = sc.dvp;
        for (int t = 0; t < rows; t++) {
            int oRow = t * dvp;
            float a = alpha[t];
            for (int x = 0; x < dvp; x++) {
                o[oRow + x] *= a;
            }
            for (int j = 0; j < keys; j++) {
                float pj = p[t * KEY_TILE + pCol + j];
                if (pj == 0f) {
                    continue;
                }
                long vRow = vOff + j * vStride;
                for (int x = 0; x < dvp; x++) {
                    o[oRow + x] = Math.fma(pj, v.get(FLOAT, vRow + (long) x * Float.BYTES), o[oRow + x]);
                }
            }
        }
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
        // Widened into a copy, then scored: the scalar path's bits for copied rows, by construction.
        scoresByRow(q, rows, dp, widenRows(k, kOff, kStride, bf16, keys, dp), 0, dp, keys, s, sCol);
    }

    @Override
    public void accumulate(
            Scratch sc, int rows, int keys, int pCol, short[] v, int vOff, int vStride, boolean bf16, float[] alpha) {
        accumulate(sc, rows, keys, pCol, widenRows(v, vOff, vStride, bf16, keys, sc.dvp), 0, sc.dvp, alpha);
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
        scoresByRow(q, rows, dp, widenRows(k, kOff, kStride, bf16, keys, dp), 0, dp, keys, s, sCol);
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
        accumulate(sc, rows, keys, pCol, widenRows(v, vOff, vStride, bf16, keys, sc.dvp), 0, sc.dvp, alpha);
    }

    /** Rows {@code j < keys} of {@code width} patterns at byte {@code off + j * stride} of {@code src}, widened. */
    private static float[] widenRows(MemorySegment src, long off, long stride, boolean bf16, int keys, int width) {
        float[] rows = new float[keys * width];
        for (int j = 0; j < keys; j++) {
            for (int x = 0; x < width; x++) {
                rows[j * width + x] = HalfRows.widen(src.get(HALF, off + j * stride + 2L * x), bf16);
            }
        }
        return rows;
    }

    /** Rows {@code j < keys} of {@code width} patterns at {@code src[off + j * stride]}, widened into one array. */
    private static float[] widenRows(short[] src, int off, int stride, boolean bf16, int keys, int width) {
        // The array viewed as memory: its shorts are the native-order patterns the segment form reads.
        return widenRows(MemorySegment.ofArray(src), 2L * off, 2L * stride, bf16, keys, width);
    }

    @Override
    public void multiply(float[] a, int rows, int inner, float[] b, int bOff, float[] c) {
        for (int t = 0; t < rows; t++) {
            int cRow = t * KEY_TILE;
            Arrays.fill(c, cRow, cRow + KEY_TILE, 0f);
            for (int x = 0; x < inner; x++) {
                float ax = a[t * inner + x];
                int bRow = bOff + x * KEY_TILE;
                for (int j = 0; j < KEY_TILE; j++) {
                    c[cRow + j] = Math.fma(ax, b[bRow + j], c[cRow + j]);
                }
            }
        }
    }

    @Override
    public void multiplyAdd(float[] a, int rows, int inner, float[] b, int bOff, int width, float[] c, int cOff) {
        for (int t = 0; t < rows; t++) {
            int cRow = cOff + t * width;
            for (int x = 0; x < inner; x++) {
                float ax = a[t * KEY_TILE + x];
                if (ax == 0f) {
                    continue;
                }
                int bRow = bOff + x * width;
                for (int y = 0; y < width; y++) {
                    c[cRow + y] = Math.fma(ax, b[bRow + y], c[cRow + y]);
                }
            }
        }
    }

    @Override
    public void softmaxBackward(
            float[] s, float[] dp, int keys, int key0, int rowOff, boolean masked, BackwardRows rows) {
        // The reference form of the vector loop: row statistics read straight from the rows, one element at a time.
        float cap = rows.softcap();
        float slope = rows.slope();
        for (int j = 0; j < keys; j++) {
            int key = key0 + j;
            for (int t = 0; t < KEY_TILE; t++) {
                int at = j * KEY_TILE + t;
                int row = rowOff + t;
                if (masked && (key < rows.first()[row] || key > rows.last()[row])) {
                    s[at] = 0f;
                    dp[at] = 0f;
                    continue;
                }
                float y = s[at] * rows.scoreScale();
                float capSlope = 1f;
                if (cap > 0f) {
                    float th = (float) Math.tanh(y / cap);
                    y = cap * th;
                    capSlope = 1f - th * th;
                }
                if (slope != 0f) {
                    y -= slope * Math.abs(rows.diag()[row] - key);
                }
                float p = (float) Math.exp(Math.min(y - rows.lse()[row], 0f)); // p <= 1 despite a rounded LSE
                s[at] = p;
                dp[at] = p == 0f ? 0f : p * (dp[at] - rows.delta()[row]) * capSlope;
            }
        }
    }

    @Override
    public void dropoutRow(float[] s, int off, int n, int key0, int lo, int hi, int threshold, float inverse) {
        for (int j = 0; j < n; j++) {
            s[off + j] = keep(lo, hi, key0 + j, threshold) ? s[off + j] * inverse : 0f;
        }
    }

    @Override
    public void dropoutFactors(
            float[] f, int keys, int key0, int[] lo, int[] hi, int rowOff, int threshold, float inverse) {
        for (int j = 0; j < keys; j++) {
            for (int t = 0; t < KEY_TILE; t++) {
                f[j * KEY_TILE + t] = keep(lo[rowOff + t], hi[rowOff + t], key0 + j, threshold) ? inverse : 0f;
            }
        }
    }

    /** The scalar form of {@link dev.aule.spi.Dropout#keep}, from the row key's halves. */
    private static boolean keep(int lo, int hi, int key, int threshold) {
        int x = dev.aule.spi.Dropout.hash(lo, hi, dev.aule.spi.Dropout.group(key));
        return (((key >>> 4) & 1) == 0 ? x & 0xffff : x >>> 16) >= threshold;
    }

    @Override
    public void applyFactors(float[] x, float[] f, int n) {
        for (int i = 0; i < n; i++) {
            x[i] = f[i] == 0f ? 0f : x[i] * f[i];
        }
    }
}
