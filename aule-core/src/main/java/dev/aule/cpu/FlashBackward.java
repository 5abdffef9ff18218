package dev.aule.cpu;

import dev.aule.AttentionOptions;
import dev.aule.Gradients;
import dev.aule.Tensor;
import dev.aule.cpu.vector.BackwardRows;
import dev.aule.mask.BlockMask;
import dev.aule.spi.AttentionShape;
import dev.aule.spi.BackwardInputs;
import dev.aule.spi.Dropout;
import dev.aule.spi.Visibility;

import java.util.Arrays;
import java.util.Comparator;
import java.util.stream.IntStream;

/**
 * One FlashAttention-2 backward call on the CPU: the probabilities are recomputed tile by tile from
 * the saved LSE, so no {@code Sq x Sk} matrix ever exists. Per visible pair, with {@code q} pre-scaled:
 * <pre>
 *   p = exp(s - lse)        dV += p dOut          dp = dOut . v
 *   ds = p (dp - delta)     dK += ds q            dQ += scale ds k      delta = rowsum(dOut * out)
 * </pre>
 * (softcap multiplies ds by its derivative; ALiBi adds nothing; dropout, with {@code f = keep / (1 - p)} the
 * forward's factor, makes {@code dV += f p dOut} and {@code dp = f dOut . v}. With a dense mask, bias, MaskMod or
 * ScoreMod, {@link ScoreMasks#softmaxBackward} does this step instead, except in tiles where only a
 * MaskMod is set and its BlockMask says FULL; tiles the BlockMask marks empty are skipped.)
 *
 * <p>Three phases, each a {@link CpuPool#forEach} over independent items:
 * <ol>
 *   <li>prepare, per (batch, query head): F32 copies of the scaled queries and of dOut, each row-major
 *       and transposed per tile, the LSE and delta. Every key block re-reads every query tile that
 *       sees it, so packing them once costs O(N) memory and saves a transpose per tile pair.</li>
 *   <li>main, per (batch, KV head, key chunk): a chunk is every {@code chunks}-th key block (strided, so
 *       causal work spreads evenly). Each key block is owned by one task, which loops over the query
 *       heads of its group and the query tiles that see the block, accumulates the block's dK and dV
 *       and writes them; and adds its dQ contributions to the chunk's own partial sum.</li>
 *   <li>reduce, per (batch, query head, query tile): dQ = scale * the chunks' partial sums, in chunk order.</li>
 * </ol>
 * Nothing accumulates across threads and {@code chunks} depends on the shape alone, so the gradients
 * are bitwise the same for any thread count and schedule.
 *
 * <p>Memory beyond the tensors, all O(N): the packed query side (about twice q and dOut, in F32) and
 * {@code chunks} F32 copies of dQ (at most {@link TileConfig#DQ_PARTIALS_EXTRA_BYTES} beyond the first; fewer
 * chunks when they would not fit).
 *
 * <p>Tiles are square, {@code T = }{@link TileMath#keyTile()} keys ({@link TileConfig#KEY_BLOCK_VECTORS} vectors:
 * 64 with 512-bit vectors) by T query rows, kept transposed (keys as rows, query rows along the lanes) so the
 * three gradient products are row-times-matrix products; see {@link TileMath#multiplyAdd}.
 */
final class FlashBackward {
    private final TileMath math;
    private final Tensor q;
    private final Tensor k;
    private final Tensor v;
    private final Tensor out;
    private final Tensor dOut;
    private final Tensor lse;
    private final Tensor dq;
    private final Tensor dk;
    private final Tensor dv;
    private final int queryLen;
    private final int keyLen;
    private final int queryHeads;
    private final int kvHeads;
    private final int group;
    private final int headDim;
    private final int valueDim;
    private final int dPad;
    private final int dvPad;
    private final int t;
    private final int tiles;
    private final int blocks;
    private final int chunks;
    private final float scale;
    // What q is multiplied by when packed (FlashForward.queryScale); when it is 1 and the scale is not, the
    // softmax step scales the scores and dK is scaled when written.
    private final float queryScale;
    private final float softcap;
    private final AttentionOptions options; // the ALiBi slopes of each (batch, query head)
    private final ScoreMasks masks; // null without dense mask, bias, MaskMod and ScoreMod
    private final int batchBase; // the batch index of batch entry 0 for dropout and per-batch ALiBi
    private final boolean dropout;
    private final long dropoutSeed;
    private final int dropoutThreshold;
    private final float dropoutInverse;
    private final int[][] dropLo; // [b * Hq][tiles * t]: each row's dropout key, low half (null without dropout)
    private final int[][] dropHi; // its high half

    // Per query row, padded to tiles * t rows (padding rows see nothing: first 1, last 0).
    private final int[] first;
    private final int[] last;
    private final float[] diag;
    // Per key block: the query tiles that may see it (to, exclusive).
    private final int[] tileFrom;
    private final int[] tileTo;
    private final int[] order;

    // Per (batch, query head), filled by prepare; rows padded to tiles * t with zeros.
    private final float[][] qRows; // [tiles * t][dPad], q * queryScale
    private final boolean[][] finiteRows; // [b * Hq][tiles]: whether the tile's q and dOut rows are all finite
    private final float[][] qCols; // [tiles][headDim][t], the same transposed per tile
    private final float[][] dORows; // [tiles * t][dvPad]
    private final float[][] dOCols; // [tiles][valueDim][t]
    // Per (batch, query head), built once by prepare: lse ([tiles * t]; +inf where lse is -inf, so such rows get
    // p = 0), delta ([tiles * t], rowsum(dOut * out)), the call's row intervals and diagonal, softcap and slope.
    private final BackwardRows[] rowStats;
    private final float[][][] dqParts; // [chunks][b * Hq][tiles][dPad][t]: each chunk's dQ^T / scale

    FlashBackward(TileMath math, AttentionShape shape, AttentionOptions options, BackwardInputs in, Gradients grads) {
        this(math, shape, options, in, grads, 0);
    }

    /** A call whose batch entry 0 is batch {@code batchBase} for dropout and per-batch ALiBi (a packed sequence's). */
    FlashBackward(
            TileMath math,
            AttentionShape shape,
            AttentionOptions options,
            BackwardInputs in,
            Gradients grads,
            int batchBase) {
        this.math = math;
        this.q = in.q();
        this.k = in.k();
        this.v = in.v();
        this.out = in.out();
        this.dOut = in.dOut();
        this.lse = in.lse();
        this.dq = grads.dq();
        this.dk = grads.dk();
        this.dv = grads.dv();
        this.queryLen = shape.queryLen();
        this.keyLen = shape.keyLen();
        this.queryHeads = shape.queryHeads();
        this.kvHeads = shape.kvHeads();
        this.group = shape.groupSize();
        this.headDim = shape.headDim();
        this.valueDim = shape.valueDim();
        // Whole vectors per row, and dQ^T's rows (dPad of them) in the kernels' groups of MICRO_ROWS.
        this.dPad = roundUp(headDim, Math.max(TileConfig.MICRO_ROWS, math.lanes()));
        this.dvPad = roundUp(valueDim, Math.max(TileConfig.MICRO_ROWS, math.lanes()));
        this.t = math.keyTile();
        this.tiles = ceilDiv(queryLen, t);
        this.blocks = ceilDiv(keyLen, t);
        this.scale = options.scale(headDim);
        this.queryScale = FlashForward.queryScale(options, scale);
        this.softcap = options.softcap();
        this.options = options;
        this.masks = ScoreMasks.of(options);
        this.batchBase = batchBase;
        this.dropout = options.hasDropout();
        this.dropoutSeed = options.dropoutSeed();
        this.dropoutThreshold = Dropout.threshold(options.dropout());
        this.dropoutInverse = (float) (1.0 / (1.0 - options.dropout()));

        // Each packed query-side array is one Java array per head: fail before any work if it cannot be.
        int paddedRows = Math.multiplyExact(tiles, t);
        Math.multiplyExact(paddedRows, Math.max(dPad, dvPad));
        Visibility visibility = Visibility.of(queryLen, keyLen, options);
        this.first = new int[paddedRows];
        this.last = new int[paddedRows];
        this.diag = new float[paddedRows];
        for (int i = 0; i < paddedRows; i++) {
            boolean real = i < queryLen;
            first[i] = real ? visibility.first(i) : 1;
            last[i] = real ? visibility.last(i) : 0;
            diag[i] = (float) (i + visibility.offset());
        }
        this.tileFrom = new int[blocks];
        this.tileTo = new int[blocks];
        findTiles();

        int bh = shape.batch() * queryHeads;
        long partialBytes = 4L * bh * tiles * dPad * t;
        int wanted = ceilDiv(TileConfig.BACKWARD_TARGET_TASKS, shape.batch() * kvHeads);
        long affordable = 1 + TileConfig.DQ_PARTIALS_EXTRA_BYTES / partialBytes;
        this.chunks = (int) Math.max(1, Math.min(Math.min(wanted, blocks), affordable));
        this.order = costliestFirst(shape.batch() * kvHeads);

        this.qRows = new float[bh][];
        this.finiteRows = new boolean[bh][];
        this.qCols = new float[bh][];
        this.dORows = new float[bh][];
        this.dOCols = new float[bh][];
        this.rowStats = new BackwardRows[bh];
        this.dqParts = new float[chunks][bh][];
        this.dropLo = dropout ? new int[bh][] : null;
        this.dropHi = dropout ? new int[bh][] : null;
    }

    /** Runs the three phases on at most {@code maxWorkers} workers. */
    void compute(int maxWorkers) {
        inParallel(qRows.length, maxWorkers, this::prepare);
        inParallel(order.length, maxWorkers, this::main);
        inParallel(qRows.length * tiles, maxWorkers, this::reduce);
    }

    private interface Phase {
        void run(int item, Scratch scratch);
    }

    private void inParallel(int items, int maxWorkers, Phase phase) {
        CpuPool.forEach(items, maxWorkers, item -> {
            Scratch scratch = Scratch.acquire();
            try {
                scratch.ensureBackward(t, headDim, dPad, valueDim, dvPad);
                phase.run(item, scratch);
            } finally {
                Scratch.release(scratch);
            }
        });
    }

    /** Tile range per key block: tiles whose rows' union of visible keys meets the block. */
    private void findTiles() {
        int[] lo = new int[tiles];
        int[] hi = new int[tiles];
        for (int tile = 0; tile < tiles; tile++) {
            lo[tile] = Integer.MAX_VALUE;
            hi[tile] = -1;
            for (int i = tile * t; i < Math.min(queryLen, (tile + 1) * t); i++) {
                if (first[i] <= last[i]) {
                    lo[tile] = Math.min(lo[tile], first[i]);
                    hi[tile] = Math.max(hi[tile], last[i]);
                }
            }
        }
        for (int kb = 0; kb < blocks; kb++) {
            int j0 = kb * t;
            int j1 = Math.min(keyLen, j0 + t) - 1;
            int from = tiles;
            int to = 0;
            for (int tile = 0; tile < tiles; tile++) {
                if (lo[tile] <= j1 && hi[tile] >= j0) {
                    from = Math.min(from, tile);
                    to = tile + 1;
                }
            }
            tileFrom[kb] = from;
            tileTo[kb] = to;
        }
    }

    /** Main-phase tasks, (batch, KV head, chunk), ordered by the tile pairs they visit, most first. */
    private int[] costliestFirst(int kvItems) {
        long[] cost = new long[chunks];
        for (int kb = 0; kb < blocks; kb++) {
            cost[kb % chunks] += Math.max(0, tileTo[kb] - tileFrom[kb]);
        }
        Integer[] byCost = IntStream.range(0, chunks).boxed().toArray(Integer[]::new);
        Arrays.sort(byCost, Comparator.comparingLong((Integer c) -> cost[c]).reversed());
        int[] items = new int[kvItems * chunks];
        int n = 0;
        for (int chunk : byCost) {
            for (int head = 0; head < kvItems; head++) {
                items[n++] = head * chunks + chunk;
            }
        }
        return items;
    }

    /** Phase 1 for one (batch, query head): packs scaled q and dOut in both layouts, LSE and delta. */
    private void prepare(int bh, Scratch sc) {
        int b = bh / queryHeads;
        int h = bh % queryHeads;
        float[] qr = new float[tiles * t * dPad];
        float[] qc = new float[tiles * headDim * t];
        float[] dor = new float[tiles * t * dvPad];
        float[] doc = new float[tiles * valueDim * t];
        float[] rl = new float[tiles * t];
        float[] rd = new float[tiles * t];
        float[] row = sc.row;
        float[] outRow = sc.row2;
        boolean[] finite = new boolean[tiles];
        java.util.Arrays.fill(finite, true);
        for (int i = 0; i < queryLen; i++) {
            int colBase = (i / t) * headDim * t + i % t;
            float check = 0f; // 0 * x is 0 for every finite x and NaN for NaN and the infinities
            q.readRow(b, h, i, row, 0);
            for (int x = 0; x < headDim; x++) {
                float scaled = row[x] * queryScale;
                qr[i * dPad + x] = scaled;
                qc[colBase + x * t] = scaled;
                check += 0f * scaled;
            }
            dOut.readRow(b, h, i, row, 0);
            out.readRow(b, h, i, outRow, 0);
            int dColBase = (i / t) * valueDim * t + i % t;
            double delta = 0;
            for (int x = 0; x < valueDim; x++) {
                dor[i * dvPad + x] = row[x];
                doc[dColBase + x * t] = row[x];
                delta += (double) row[x] * outRow[x];
                check += 0f * row[x];
            }
            if (check != 0f) {
                finite[i / t] = false;
            }
            float rowLse = lse.get(b, h, i, 0);
            rl[i] = rowLse == Float.NEGATIVE_INFINITY ? Float.POSITIVE_INFINITY : rowLse;
            rd[i] = (float) delta;
        }
        if (dropout) {
            int[] lo = new int[tiles * t];
            int[] hi = new int[tiles * t];
            for (int i = 0; i < queryLen; i++) {
                long key = Dropout.rowKey(dropoutSeed, batchBase + b, h, i);
                lo[i] = (int) key;
                hi[i] = (int) (key >>> 32);
            }
            dropLo[bh] = lo;
            dropHi[bh] = hi;
        }
        finiteRows[bh] = finite;
        qRows[bh] = qr;
        qCols[bh] = qc;
        dORows[bh] = dor;
        dOCols[bh] = doc;
        rowStats[bh] = new BackwardRows(
                rl,
                rd,
                first,
                last,
                diag,
                softcap,
                options.alibiSlope(batchBase + b, h),
                queryScale == scale ? 1f : scale);
        for (int c = 0; c < chunks; c++) {
            dqParts[c][bh] = new float[tiles * dPad * t];
        }
    }

    /** Phase 2 for one (batch, KV head, chunk): dK and dV of the chunk's key blocks, its dQ partial sums. */
    private void main(int index, Scratch sc) {
        int item = order[index];
        int chunk = item % chunks;
        int b = item / chunks / kvHeads;
        int kvHead = item / chunks % kvHeads;
        float[] sT = sc.sT;
        float[] dpT = sc.dpT;
        for (int kb = chunk; kb < blocks; kb += chunks) {
            int j0 = kb * t;
            int jn = Math.min(t, keyLen - j0);
            int jn4 = roundUp(jn, TileConfig.MICRO_ROWS);
            boolean finiteKeys = packKeys(sc, b, kvHead, j0, jn, jn4);
            Arrays.fill(sc.dkAcc, 0, jn4 * dPad, 0f);
            Arrays.fill(sc.dvAcc, 0, jn4 * dvPad, 0f);
            for (int g = 0; g < group; g++) {
                int head = kvHead * group + g;
                int bh = b * queryHeads + head;
                float[] dqPart = dqParts[chunk][bh];
                for (int tile = tileFrom[kb]; tile < tileTo[kb]; tile++) {
                    int r0 = tile * t;
                    int rows = Math.min(t, queryLen - r0);
                    BlockMask.Status status = masks == null
                            ? BlockMask.Status.FULL
                            : masks.tile(b, head, head, r0, r0 + rows - 1, j0, j0 + jn - 1);
                    if (status == BlockMask.Status.EMPTY) {
                        continue;
                    }
                    math.multiply(sc.kRows, jn4, headDim, qCols[bh], r0 * headDim, sT);
                    math.multiply(sc.vRows, jn4, valueDim, dOCols[bh], r0 * valueDim, dpT);
                    if (dropout) { // dp = f dOut . v before the softmax step, dV's weights f p after it
                        dropoutFactors(sc, jn4, j0, bh, r0);
                    }
                    if (masks == null || !masks.changesRows(status)) {
                        math.softmaxBackward(sT, dpT, jn4, j0, r0, !fullyVisible(r0, j0), rowStats[bh]);
                    } else {
                        masks.softmaxBackward(
                                sT, dpT, jn4, j0, r0, t, rowStats[bh], b, head, status == BlockMask.Status.FULL);
                    }
                    if (dropout) {
                        math.applyFactors(sT, sc.dropT, jn4 * t);
                    }
                    if (finiteRows[bh][tile]) {
                        math.multiplyAdd(sT, jn4, rows, dORows[bh], r0 * dvPad, dvPad, sc.dvAcc, 0);
                        math.multiplyAdd(dpT, jn4, rows, qRows[bh], r0 * dPad, dPad, sc.dkAcc, 0);
                    } else {
                        addSeenRows(sT, jn4, rows, dORows[bh], r0 * dvPad, dvPad, sc.dvAcc);
                        addSeenRows(dpT, jn4, rows, qRows[bh], r0 * dPad, dPad, sc.dkAcc);
                    }
                    if (finiteKeys) {
                        math.multiplyAdd(sc.kCols, dPad, jn, dpT, 0, t, dqPart, r0 * dPad);
                    } else {
                        addVisibleKeys(sc.kCols, jn, dpT, dqPart, r0 * dPad);
                    }
                }
            }
            if (queryScale != scale) { // unscaled queries: dK = scale * sum ds q
                math.scale(sc.dkAcc, 0, jn * dPad, scale);
            }
            for (int j = 0; j < jn; j++) {
                dk.writeRow(b, kvHead, j0 + j, sc.dkAcc, j * dPad);
                dv.writeRow(b, kvHead, j0 + j, sc.dvAcc, j * dvPad);
            }
        }
    }

    /** The tile pair's dropout factors into {@code sc.dropT}, and {@code dp *= f}: a small method, kept apart from main. */
    private void dropoutFactors(Scratch sc, int jn4, int j0, int bh, int r0) {
        math.dropoutFactors(sc.dropT, jn4, j0, dropLo[bh], dropHi[bh], r0, dropoutThreshold, dropoutInverse);
        math.applyFactors(sc.dpT, sc.dropT, jn4 * t);
    }

    /** Whether every row of the tile at {@code r0} sees every key of the block at {@code j0} (no mask needed). */
    private boolean fullyVisible(int r0, int j0) {
        int r1 = r0 + t - 1;
        int j1 = j0 + t - 1;
        return r1 < queryLen && j1 < keyLen && first[r1] <= j0 && last[r0] >= j1;
    }

    /**
     * Packs the key block (rows {@code [jn, jn4)} and columns {@code [jn, t)} of the transpose are zeroed) and
     * returns whether all its keys are finite.
     */
    private boolean packKeys(Scratch sc, int b, int kvHead, int j0, int jn, int jn4) {
        float[] kRows = sc.kRows;
        float[] kCols = sc.kCols;
        float check = 0f; // 0 * x is 0 for every finite x and NaN for NaN and the infinities
        for (int j = 0; j < jn; j++) {
            k.readRow(b, kvHead, j0 + j, kRows, j * headDim);
            v.readRow(b, kvHead, j0 + j, sc.vRows, j * valueDim);
            for (int x = 0; x < headDim; x++) {
                float value = kRows[j * headDim + x];
                kCols[x * t + j] = value;
                check += 0f * value;
            }
        }
        Arrays.fill(kRows, jn * headDim, jn4 * headDim, 0f);
        Arrays.fill(sc.vRows, jn * valueDim, jn4 * valueDim, 0f);
        for (int x = 0; x < dPad; x++) {
            Arrays.fill(kCols, x * t + (x < headDim ? jn : 0), (x + 1) * t, 0f);
        }
        return check == 0f;
    }

    /**
     * {@code c[rows][width] += a[rows][inner] b[inner][width]} ({@code a}'s rows {@code t} apart, {@code c} from 0)
     * skipping the pairs where {@code a} is 0: {@code dV += P^T dOut} and {@code dK += dS^T q} for a query tile
     * holding a NaN or an infinity (in q or dOut), so a row a key cannot be seen by never reaches that key's
     * gradients through {@code 0 * NaN}. Rare, so scalar, in a fixed order.
     */
    private void addSeenRows(float[] a, int rows, int inner, float[] b, int bOff, int width, float[] c) {
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < inner; i++) {
                float weight = a[r * t + i];
                if (weight != 0f) {
                    for (int w = 0; w < width; w++) {
                        c[r * width + w] += weight * b[bOff + i * width + w];
                    }
                }
            }
        }
    }

    /**
     * {@code dQ^T += K^T dS^T} for a key block holding a NaN or an infinity, where the plain product would
     * turn the exact zeros of the rows that cannot see such a key into {@code 0 * NaN}: here a pair with
     * {@code ds = 0} adds nothing, so a key a row cannot see never reaches its dQ (a NaN {@code ds}, from
     * a row that sees a NaN key, still propagates). Rare, so scalar; the order is fixed, so the result
     * does not depend on the thread count.
     */
    private void addVisibleKeys(float[] kCols, int jn, float[] dsT, float[] dqPart, int dqOff) {
        for (int x = 0; x < headDim; x++) {
            for (int j = 0; j < jn; j++) {
                float key = kCols[x * t + j];
                for (int lane = 0; lane < t; lane++) {
                    float ds = dsT[j * t + lane];
                    if (ds != 0f) {
                        dqPart[dqOff + x * t + lane] += key * ds;
                    }
                }
            }
        }
    }

    /** Phase 3 for one (batch, query head, tile): dq rows = scale * the chunks' partial sums, in chunk order. */
    private void reduce(int item, Scratch sc) {
        int bh = item / tiles;
        int tile = item % tiles;
        int b = bh / queryHeads;
        int h = bh % queryHeads;
        float[] row = sc.row;
        int base = tile * dPad * t;
        for (int i = tile * t; i < Math.min(queryLen, (tile + 1) * t); i++) {
            int lane = i - tile * t;
            for (int x = 0; x < headDim; x++) {
                float sum = 0f;
                for (int c = 0; c < chunks; c++) {
                    sum += dqParts[c][bh][base + x * t + lane];
                }
                row[x] = sum * scale;
            }
            dq.writeRow(b, h, i, row, 0);
        }
    }

    private static int roundUp(int x, int multiple) {
        return ceilDiv(x, multiple) * multiple;
    }

    private static int ceilDiv(int x, int divisor) {
        return (x + divisor - 1) / divisor;
    }
}
