package dev.aule.cpu;

import dev.aule.cpu.vector.BackwardRows;

import java.lang.foreign.MemorySegment;

/**
 * The arithmetic of one FlashAttention tile, with a SIMD and a scalar implementation.
 *
 * <p>Layouts (all row-major {@code float[]} scratch, padded so every row is whole vectors):
 * a query tile {@code q[rows][d]}, a key block transposed {@code kt[d][keyTile]}, scores and
 * probabilities {@code s[rows][keyTile]}, a value block {@code v[keyTile][dvp]} and the output
 * accumulator {@code o[rows][dvp]}, with {@code dvp} a multiple of {@link #lanes()}.
 * {@code rows} is always a multiple of 4.
 */
interface TileMath {

    /** Floats per vector; value rows are padded to a multiple of it. */
    int lanes();

    /** Keys per block: the row length of the score tile. */
    int keyTile();

    /** One line for people: "512-bit Vector API", "scalar". */
    String description();

    /**
     * {@code s[t][sCol + j] = q[t] . k[j]} for {@code j < keys} with both operands row-major: query rows {@code dp}
     * apart ({@code dp} a multiple of {@link #lanes()}, zero-padded), key row {@code j} at {@code kOff + j * kStride}
     * with {@code dp} readable floats. For short tiles (decode), where packing a transposed key block would
     * cost more than the products; {@code k} may be the key tensor's own array. {@code sCol} places a run of
     * keys within the block (a paged cache's block runs each get a call).
     */
    void scoresByRow(float[] q, int rows, int dp, float[] k, int kOff, int kStride, int keys, float[] s, int sCol);

    /**
     * {@link #scoresByRow(float[], int, int, float[], int, int, int, float[], int)} with the keys read in place from
     * any memory holding native-order floats: key row {@code j} at byte {@code kOff + j * kStride} of {@code k}.
     */
    void scoresByRow(
            float[] q, int rows, int dp, MemorySegment k, long kOff, long kStride, int keys, float[] s, int sCol);

    /**
     * {@link #scoresByRow(float[], int, int, float[], int, int, int, float[], int)} with the keys read in place from
     * their 16-bit patterns, F16 when {@code bf16} is false, else bfloat16: key row {@code j} at
     * {@code k[kOff + j * kStride, +dp)}, widened as {@link #widen} widens it, with the bits of widening the rows
     * into scratch and scoring the copies.
     */
    void scoresByRow(
            float[] q, int rows, int dp, short[] k, int kOff, int kStride, boolean bf16, int keys, float[] s, int sCol);

    /**
     * {@link #scoresByRow(float[], int, int, short[], int, int, boolean, int, float[], int)} with key row {@code j} the
     * native-order 16-bit patterns at byte {@code kOff + j * kStride} of {@code k}.
     */
    void scoresByRow(
            float[] q,
            int rows,
            int dp,
            MemorySegment k,
            long kOff,
            long kStride,
            boolean bf16,
            int keys,
            float[] s,
            int sCol);

    /**
     * {@code s[t][sCol + j] = q[t] . k[j]} for {@code t < rows}, {@code j < keys}, with the query tile transposed:
     * {@code qT[x][c]} for {@code x < d}, {@code c < }{@link #queryColumns}{@code (rows)} (columns past the
     * real rows zero), and key row {@code j} at {@code k[kOff + j * kStride, +d)}. For short tiles of more
     * than a few rows (decode with a GQA group), where query rows along the vector lanes share each
     * broadcast key element and need no horizontal sums. {@code sT} is scratch of
     * {@code keys * queryColumns(rows)} floats.
     */
    void scoresByKey(
            float[] qT, int rows, int d, float[] k, int kOff, int kStride, int keys, float[] sT, float[] s, int sCol);

    /** Columns of the transposed query tile {@link #scoresByKey} reads: {@code rows} rounded up to whole vectors. */
    default int queryColumns(int rows) {
        return (rows + lanes() - 1) / lanes() * lanes();
    }

    /**
     * {@code dst[dstOff + i]} = the 16-bit value at byte {@code srcOff + 2 i} of {@code src} as float, for
     * {@code i < count}: F16 (IEEE binary16) when {@code bf16} is false, else bfloat16; bit for bit what
     * {@link Float#float16ToFloat} and a 16-bit shift give, subnormals included (any NaN stays a NaN). How
     * half-precision keys and values reach the tiles.
     */
    void widen(MemorySegment src, long srcOff, boolean bf16, float[] dst, int dstOff, int count);

    /**
     * {@code dst[dstOff + r * dstStride + x] = format.decode(codes[codeOff + r * dim + x]) * scale} for
     * {@code r < rows}, {@code x < dim}: how quantized keys and values reach the tiles, bit for bit the scalar
     * decode times the scale.
     */
    void dequantize(
            dev.aule.spi.QuantizedKv.Format format,
            byte[] codes,
            int codeOff,
            int dim,
            int rows,
            float scale,
            float[] dst,
            int dstOff,
            int dstStride);

    /**
     * Whether {@link #quantizedScores} and the matching {@code accumulate} read keys and rows of {@code dim} codes in
     * place (else the codes are dequantized into scratch).
     */
    boolean codesInPlace(int dim);

    /**
     * A short tile's scores against quantized keys stored element by element ({@link
     * dev.aule.spi.QuantizedKv#keyCode}), given as {@code runs} runs of consecutive keys of one block each: run
     * {@code r} holds {@code runKeys[r]} keys, element {@code x} of its key {@code i} the code {@code
     * k[runOffsets[r] + x * keyStride + i]} ({@code keyStride} the block size), scale {@code runScales[r]}, and the
     * runs' keys fill the tile's columns in order from {@code sCol}: {@code s[t][c] = scale * (q[t] . decode(key))}
     * for {@code t < rows} (a multiple of 4), each sum {@link Math#fma}'s chain over {@code x} in order in every math.
     * Query rows {@code dp} apart; only for {@link #codesInPlace}{@code (dim)}; at most 64 keys in all. {@code
     * abnormal}: FP8, bit {@code c - sCol} set when the key of column {@code c} may hold a code which is not a normal
     * number (the cache's row flags, {@link dev.aule.spi.QuantizedKv#keyRowsAbnormal}, or {@link #abnormalKeys}); 0
     * for INT8. Given all at once so that the kernel can pair vectors of keys from different blocks. {@code
     * qRebiased}: what {@link #rebiasQueries} returned for the tile's queries and this format.
     */
    void quantizedScores(
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
            int sCol);

    /**
     * Called once a short tile's queries are loaded, before its {@link #quantizedScores} against keys of {@code
     * format}: a math whose kernel reads the queries in another form as well writes that form of {@code q}'s first
     * {@code n} floats to {@code dst} and returns it; else (and where that form does not serve these queries) null.
     */
    float[] rebiasQueries(dev.aule.spi.QuantizedKv.Format format, float[] q, int n, float[] dst);

    /**
     * The keys among {@code keys} FP8 keys of one block's run, stored as {@link #quantizedScores} reads them, that hold
     * a code which is not a
     * normal number, as it takes them, for caches that keep no row flags. A math whose kernels widen every code the
     * same way may return any bits.
     */
    long abnormalKeys(dev.aule.spi.QuantizedKv.Format format, byte[] codes, int off, int keyStride, int dim, int keys);

    /**
     * The rows among {@code keys} rows of {@code dim} FP8 codes from {@code off} (at most 64) that hold a code which is
     * not a normal number, as {@link #accumulate(Scratch, int, int, int, dev.aule.spi.QuantizedKv.Format, byte[], int,
     * int, float, long, float[])} takes them, for caches that keep no row flags. A math whose kernels widen every code
     * the same way may return any bits.
     */
    long abnormalRows(dev.aule.spi.QuantizedKv.Format format, byte[] codes, int off, int dim, int keys);

    /**
     * {@link #accumulate(Scratch, int, int, int, float[], int, int, float[])} with value row {@code j} the
     * {@code dim} codes at {@code v[vOff + j * dim]} times {@code scale} (folded into the probabilities, which may be
     * left multiplied by it, or by more: the tile does not read them again); only for {@link #codesInPlace}{@code
     * (dim)}. {@code pBound}: no probability of the rows exceeds it (a kernel may rely on it to keep its products
     * exact). {@code abnormal} as for the scores.
     */
    void accumulate(
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
            float[] alpha);

    /** {@code x[off, off+n) *= factor}. */
    void scale(float[] x, int off, int n, float factor);

    /**
     * {@code dst[dstOff + i] = src[srcOff + i] * factor} for {@code i < n}: a row copied and scaled in one pass (a
     * query row into the tile, an output row out of it), with the bits of a copy then {@link #scale}.
     */
    default void scaleTo(float[] src, int srcOff, int n, float factor, float[] dst, int dstOff) {
        for (int i = 0; i < n; i++) {
            dst[dstOff + i] = src[srcOff + i] * factor;
        }
    }

    /**
     * {@code s = cap * tanh((scale * s) / cap)} over {@code s[off, off+n)}: the softcap of unscaled dot products.
     * With a softcap the queries are not pre-scaled, so an extreme scale saturates the tanh instead of
     * overflowing the query tile ({@code scale * s} may be infinite; the tanh of an infinity is exact).
     */
    void softcap(float[] s, int off, int n, float scale, float cap);

    /** {@code s[off + j] -= slope * |center - j|} for {@code j} in {@code [0, n)}: ALiBi's distance penalty. */
    void alibi(float[] s, int off, int n, float slope, float center);

    /** Whether every one of {@code s[off, off+n)} is finite. */
    boolean allFinite(float[] s, int off, int n);

    /** Largest of {@code s[off, off+n)}. */
    float max(float[] s, int off, int n);

    /** {@code s = exp(s - max)} in place over {@code s[off, off+n)}; returns the sum. {@code -inf} gives 0. */
    float expSum(float[] s, int off, int n, float max);

    /**
     * {@code o[t] = alpha[t] * o[t] + sum_j p[t][pCol + j] * v[j]} for {@code t < rows} and {@code j < keys},
     * with {@code p} the tile's probabilities ({@code sc.s}, rows {@link #keyTile()} apart) and {@code o} its
     * unnormalised output ({@code sc.o}, rows {@code dvp} = {@code sc.dvp} apart): the online-softmax rescale fused with the
     * probabilities-times-values product. Value row {@code j}
     * is {@code v[vOff + j * vStride, +dvp)}: the packed block ({@code 0, dvp}) or the value tensor's own array.
     * {@code pCol} places a run of keys within the block; later runs of a block pass alphas of 1.
     */
    void accumulate(Scratch sc, int rows, int keys, int pCol, float[] v, int vOff, int vStride, float[] alpha);

    /**
     * {@link #accumulate(Scratch, int, int, int, float[], int, int, float[])} over a tile's rows {@code [from, rows)}
     * (both multiples of 4: the rows that see the block) and one run of value rows ({@code pCol} 0): the packed
     * block, or the value tensor's array read in place; in whatever register blocks suit it best, with the same bits.
     * The rows before {@code from} may be accumulated too, so they must carry zero probabilities and an alpha of 1.
     */
    default void accumulateTile(
            Scratch sc, int from, int rows, int keys, float[] v, int vOff, int vStride, float[] alpha) {
        accumulate(sc, rows, keys, 0, v, vOff, vStride, alpha);
    }

    /**
     * {@link #accumulate(Scratch, int, int, int, float[], int, int, float[])} with the values read
     * in place from any memory holding native-order floats: value row {@code j} at byte {@code vOff + j * vStride}
     * of {@code v}.
     */
    void accumulate(Scratch sc, int rows, int keys, int pCol, MemorySegment v, long vOff, long vStride, float[] alpha);

    /**
     * {@link #accumulate(Scratch, int, int, int, float[], int, int, float[])} with the values read in place from their
     * 16-bit patterns (F16, or bfloat16 when {@code bf16}): value row {@code j} at {@code v[vOff + j * vStride, +dvp)},
     * widened as {@link #widen} widens it, with the bits of widening the rows into scratch and accumulating the copies.
     */
    void accumulate(
            Scratch sc, int rows, int keys, int pCol, short[] v, int vOff, int vStride, boolean bf16, float[] alpha);

    /**
     * {@link #accumulate(Scratch, int, int, int, short[], int, int, boolean, float[])} with value row {@code j} the
     * native-order 16-bit patterns at byte {@code vOff + j * vStride} of {@code v}.
     */
    void accumulate(
            Scratch sc,
            int rows,
            int keys,
            int pCol,
            MemorySegment v,
            long vOff,
            long vStride,
            boolean bf16,
            float[] alpha);

    // Backward. FlashBackward works on square transposed tiles: {@link #keyTile()} keys by as many
    // query rows, the query rows along the vector lanes, so a key block's gradient rows come out of
    // plain row-times-matrix products and per-row statistics (LSE, delta) load as vectors.

    /**
     * {@code c[rows][KT] = a[rows][inner] b[inner][KT]}, {@code KT} = {@link #keyTile()}: the forward's
     * scores ({@code a} = query tile, {@code b} = key block transposed), or in the backward a transposed
     * block of scores ({@code a} = keys, {@code b} = queries transposed) or of {@code dOut . v}. {@code a} and
     * {@code c} start at 0, {@code b} at {@code bOff}; {@code rows} is a multiple of 4. Overwrites c.
     */
    void multiply(float[] a, int rows, int inner, float[] b, int bOff, float[] c);

    /** Whether this math takes wide key blocks ({@link #wideBlock}); the scalar path does not. */
    default boolean wideBlocks() {
        return false;
    }

    /**
     * One wide key block of the forward ({@link TileConfig#WIDE_KEY_PANELS}): for tile rows {@code [from, to)}, all
     * of which see every key of the block, the scores of {@code sc.q} (rows {@code qStride} apart, {@code d} columns)
     * against {@code panels} packed key panels from {@code keys[keyOff]}, one online-softmax update of {@code sc.m},
     * {@code sc.l} and {@code sc.alpha} over all their keys, and P·V into {@code sc.o} from value row {@code j} at
     * {@code v[vOff + j * vStride]}; with {@code dropout}, the probabilities dropped as {@link #dropoutRow} drops
     * them (keys from {@code key0}, the rows' mask keys in {@code sc.dropLo} and {@code sc.dropHi}) after their sums
     * are taken. Returns false, the rows' state then partly updated, when a score is NaN or a row's max is not finite,
     * for the caller to run the tile again exactly.
     */
    default boolean wideBlock(
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
        throw new UnsupportedOperationException("no wide key blocks on this path");
    }

    /**
     * {@link #multiply} fused with the online-softmax update of the rows {@code fuse} marks, rows every key of the
     * block is visible to with nothing between product and softmax: per such row {@code t}, with
     * {@code mNew = max(m[t], max(c[t]))}, {@code c[t] = exp(c[t] - mNew)}, {@code alpha[t] = exp(m[t] - mNew)} (1
     * when the max did not move), {@code l[t] = l[t] alpha[t] + sum(c[t])} and {@code m[t] = mNew}: bit for bit
     * {@link #max} then {@link #expSum} on the row. A marked row whose {@code mNew} is not finite keeps its raw
     * scores and comes back with {@code fuse[t]} false, for the caller's general update. Rows {@code [from, rows)},
     * both multiples of 4 (the rows that see the block); the rows before {@code from} may be multiplied too, never
     * updated.
     */
    default void multiplySoftmax(
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
        multiply(a, rows, inner, b, bOff, c);
        int n = keyTile();
        for (int t = from; t < rows; t++) {
            if (!fuse[t]) {
                continue;
            }
            float mOld = m[t];
            float mNew = Math.max(mOld, max(c, t * n, n));
            if (!(Math.abs(mNew) < Float.POSITIVE_INFINITY)) {
                fuse[t] = false;
                continue;
            }
            float rescale = mNew == mOld ? 1f : (float) Math.exp(mOld - mNew);
            float sum = expSum(c, t * n, n, mNew);
            l[t] = l[t] * rescale + sum;
            m[t] = mNew;
            alpha[t] = rescale;
        }
    }

    /**
     * {@code c[rows][width] += a[rows][inner] b[inner][width]} with {@code a}'s rows {@link #keyTile()} apart
     * from 0, {@code b} from {@code bOff} and {@code c} from {@code cOff}; {@code rows} is a multiple of 4 and
     * {@code width} of {@link #lanes()}. The gradient products: {@code dV += P^T dOut}, {@code dK += dS^T q} and
     * {@code dQ^T += K^T dS^T}.
     */
    void multiplyAdd(float[] a, int rows, int inner, float[] b, int bOff, int width, float[] c, int cOff);

    /**
     * Softmax backward over a transposed tile, in place: {@code s} and {@code dp} are {@code [keys][KT]},
     * row {@code j} for key {@code key0 + j}, lane {@code t} for query row {@code rowOff + t} of the arrays
     * {@code rows} holds ({@code lse}, {@code delta}, {@code first}, {@code last}, {@code diag}; {@code cap} is its
     * softcap, {@code slope} its ALiBi slope).
     * With {@code x} the scaled score in {@code s} and {@code y = cap * tanh(x / cap)} ({@code y = x} when
     * {@code cap} is 0), writes {@code p = exp(y - slope * |diag - key| - lse)} into {@code s} and
     * {@code ds = p * (dp - delta) * (1 - tanh^2(x / cap))} into {@code dp}. When {@code masked}, both are 0
     * wherever the key lies outside {@code [first, last]} of the row; otherwise every pair is visible.
     */
    void softmaxBackward(float[] s, float[] dp, int keys, int key0, int rowOff, boolean masked, BackwardRows rows);

    // Dropout: the keep bits of dev.aule.spi.Dropout, the same bits in every implementation.

    /**
     * {@code s[off + j] = keep(key0 + j) ? s[off + j] * inverse : 0} for {@code j < n} over one forward row whose
     * {@link dev.aule.spi.Dropout#rowKey} halves are {@code lo} and {@code hi}; {@code n} is {@link #keyTile()} and
     * {@code key0} a multiple of it.
     */
    void dropoutRow(float[] s, int off, int n, int key0, int lo, int hi, int threshold, float inverse);

    /**
     * The dropout factors of a transposed backward tile: {@code f[j][t] = keep ? inverse : 0} for key {@code key0 + j}
     * ({@code j < keys}) and query row {@code rowOff + t} ({@code t <} {@link #keyTile()}), whose row key halves are
     * {@code lo[rowOff + t]} and {@code hi[rowOff + t]}.
     */
    void dropoutFactors(float[] f, int keys, int key0, int[] lo, int[] hi, int rowOff, int threshold, float inverse);

    /** {@code x[i] = f[i] == 0 ? 0 : x[i] * f[i]} for {@code i < n}, {@code n} a multiple of {@link #lanes()}. */
    void applyFactors(float[] x, float[] f, int n);
}
