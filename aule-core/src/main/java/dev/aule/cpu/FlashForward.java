package dev.aule.cpu;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.mask.BlockMask;
import dev.aule.spi.AttentionShape;
import dev.aule.spi.Dropout;
import dev.aule.spi.Visibility;

import java.util.Arrays;
import java.util.Comparator;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReferenceArray;
import java.util.stream.IntStream;

/**
 * One FlashAttention-2 forward call on the CPU: query tiles stream over key blocks with an
 * online softmax, so no more than one {@code tileRows x keyTile} block of scores ever exists.
 *
 * <p>A work item is one (batch, KV head, row tile). Rows of a KV head's whole query group are
 * tiled together, ordered query-major ({@code r = i * groupSize + g}), so GQA heads share each
 * packed key and value block and a decode step with few queries still fills a tile. Each row
 * sees one contiguous key interval (causal and window both bound it), so the tile only visits
 * key blocks that some row sees, and masks elementwise only at the interval edges.
 *
 * <p>Tile sizes ({@link TileConfig}): as many query rows as keep the query tile and the output accumulator
 * within {@link TileConfig#TILE_BUDGET_BYTES}, {@link TileConfig#MIN_TILE_ROWS} to {@link TileConfig#MAX_TILE_ROWS}
 * (fewer when a sequence would otherwise have under {@link TileConfig#SEQUENCE_TILES} tiles), by
 * {@link TileMath#keyTile()} keys. Every packed key block (transposed, the costly part of a block) is then reused
 * by many passes of the micro-kernels, and the tile set in use stays in L2; with more than one tile per KV head the
 * whole key blocks are transposed once per call and shared by all its tiles ({@link #packedKeys}), and heap F32
 * values are read in place. Rows that see a whole key block, with nothing between product and softmax, take their
 * online-softmax update in the score kernel's epilogue ({@link TileMath#multiplySoftmax}) while the scores are in
 * L1. Tile rows and key splits are
 * one sequence's {@link ForwardPlan}: the same for every batch entry whatever the batch and the pool, so each
 * entry gets the bits it would get alone.
 *
 * <p>Each tile's path (packed or in-place keys and values, scores by product, row or key, array or segment) is
 * chosen once per call as a {@link TilePath}, for the full tiles and for the last one; {@link #run} then calls
 * that path's steps around {@link #updateSoftmax}, the online-softmax update of one key block.
 */
final class FlashForward {
    private final TileMath math;
    private final Tensor q;
    private final KvRows k;
    private final KvRows v;
    private final Tensor out;
    private final Tensor lse;
    private final Visibility visibility;
    private final int kvHeads;
    private final int group;
    private final int d;
    private final int dv;
    private final int dp;
    private final int dvp;
    private final int keyTile;
    private final int tileRows;
    private final int rows;
    private final int tiles;
    private final float scale;
    // What q is multiplied by when loaded (FlashForward.queryScale): the scale, or 1 with a softcap or |scale| > 1.
    private final float queryScale;
    private final float softcap;
    private final AttentionOptions options; // ALiBi slopes, read per tile row
    private final boolean alibi;
    private final boolean sinks; // sink logits: one extra softmax term per row, added when the row is written
    private final ScoreMasks masks; // null without dense mask, bias, MaskMod and ScoreMod
    // The batch index of batch entry 0 for dropout and per-batch ALiBi: a packed sequence's index, else 0.
    private final int batchBase;
    private final boolean dropout;
    private final long dropoutSeed;
    private final int dropoutThreshold;
    private final float dropoutInverse; // 1 / (1 - p)
    private final int splits;
    private final int[] order;
    // Split-KV partial states, [tileItem][split][partRows] (x dvp for o); null when splits == 1.
    private final int partRows;
    private final float[] partialO;
    private final float[] partialM;
    private final float[] partialL;
    private final AtomicIntegerArray pendingSplits;
    // Keys and values read in place by short tiles; null when they must be copied (InPlaceRows.of).
    private final InPlaceRows kInPlace;
    private final InPlaceRows vInPlace;
    // F32 query and output tensors over a float[] with unit element stride: rows read and written through the array
    // (a row's copy and scale in one vector pass) instead of through the segment; null for any other tensor.
    private final InPlaceRows qArray;
    private final InPlaceRows outArray;
    // Quantized keys and values a short tile reads in place, the block scale folded into scores and probabilities
    // (TileMath.codesInPlace); null when they are not codes, or their rows are dequantized into scratch instead.
    private final QuantRows kCodes;
    private final QuantRows vCodes;
    // The path of every tile but the last, and of the last (it may be short when the others are not).
    private final TilePath fullTilePath;
    private final TilePath lastTilePath;
    /*
     * Keys transposed once per call and (batch entry, KV head), [block][d][keyTile] over the whole key blocks from
     * key 0, packed by the first tile that needs them and read by every other tile and GQA head of that KV head
     * (kept for a later call once the head's last item is done, see PANELS);
     * null when tiles pack their own (one tile per head, a path without the packed product, or more than
     * TileConfig.PACKED_KEYS_MAX_BYTES). A block is read from here only when it is whole and starts on a multiple
     * of keyTile (a window's blocks may not); every other block is packed per tile as before. Both hold the same
     * floats in the same places, so which one a block comes from changes no bit, and the choice may depend on the
     * batch size.
     */
    private final AtomicReferenceArray<float[]> packedKeys;
    private final Object[] packLocks;
    private final int packedBlocks;
    // Work items of each (batch entry, KV head) not yet finished: the last one hands the head's panel back.
    private final AtomicIntegerArray pendingPerHead;
    /*
     * Key panels of finished calls, for later calls to reuse rather than allocate (a repeated long prefill would
     * otherwise allocate its keys' size on every call); every float of a reused panel is written before it is read.
     * At most TileConfig.PACKED_KEYS_MAX_BYTES are kept; a panel of another size is dropped.
     */
    private static final ConcurrentLinkedQueue<float[]> PANELS = new ConcurrentLinkedQueue<>();
    private static final AtomicLong PANEL_FLOATS = new AtomicLong();
    // Whether nothing stands between the score product and the softmax (no softcap, scale pass or ALiBi), so
    // rows that see a whole block take their softmax update in the score kernel (TileMath.multiplySoftmax).
    private final boolean fusable;
    // Whether tiles take key blocks of TileConfig.WIDE_KEY_PANELS panels where every row sees all of them (wideBlock).
    private final boolean wide;

    FlashForward(
            TileMath math,
            AttentionShape shape,
            AttentionOptions options,
            Tensor q,
            Tensor k,
            Tensor v,
            Tensor out,
            Tensor lse) {
        this(math, shape, options, q, KvRows.of(k), KvRows.of(v), out, lse, 0);
    }

    /**
     * A call whose keys and values come from any {@link KvRows}; {@code batchBase} is the batch index dropout and
     * per-batch ALiBi see for batch entry 0 (a packed sequence's index; 0 for a plain call).
     */
    FlashForward(
            TileMath math,
            AttentionShape shape,
            AttentionOptions options,
            Tensor q,
            KvRows k,
            KvRows v,
            Tensor out,
            Tensor lse,
            int batchBase) {
        this.math = math;
        this.q = q;
        this.k = k;
        this.v = v;
        this.out = out;
        this.lse = lse;
        this.visibility = Visibility.of(shape.queryLen(), shape.keyLen(), options);
        this.kvHeads = shape.kvHeads();
        this.group = shape.groupSize();
        this.d = shape.headDim();
        this.dv = shape.valueDim();
        this.dp = roundUp(d, math.lanes());
        this.dvp = roundUp(dv, math.lanes());
        this.keyTile = math.keyTile();
        this.rows = Math.multiplyExact(group, shape.queryLen());
        ForwardPlan plan = ForwardPlan.of(rows, kvHeads, dp, dvp, visibility, options.numSplits());
        this.tileRows = plan.tileRows();
        this.tiles = plan.tiles();
        this.partRows = Math.min(tileRows, rows);
        this.scale = options.scale(d);
        this.queryScale = queryScale(options, scale);
        this.softcap = options.softcap();
        this.options = options;
        this.alibi = options.hasAlibi();
        this.sinks = options.hasSinks();
        this.masks = ScoreMasks.of(options);
        this.batchBase = batchBase;
        this.dropout = options.hasDropout();
        this.dropoutSeed = options.dropoutSeed();
        this.dropoutThreshold = Dropout.threshold(options.dropout());
        this.dropoutInverse = (float) (1.0 / (1.0 - options.dropout()));
        int tileItems = Math.multiplyExact(Math.multiplyExact(shape.batch(), kvHeads), tiles);
        this.splits = plan.splits();
        this.order = costliestFirst(Math.multiplyExact(shape.batch(), kvHeads));
        this.kCodes = k instanceof QuantRows codes && math.codesInPlace(d) ? codes : null;
        this.vCodes = v instanceof QuantRows codes && math.codesInPlace(dv) ? codes : null;
        this.kInPlace = k.inPlace(math.lanes());
        this.vInPlace = v.inPlace(math.lanes());
        this.qArray = arrayRows(q);
        this.outArray = arrayRows(out);
        this.fullTilePath =
                TilePath.of(roundUp(Math.min(tileRows, rows), TileConfig.MICRO_ROWS), kInPlace, vInPlace, d, dp);
        this.lastTilePath =
                TilePath.of(roundUp(rows - (tiles - 1) * tileRows, TileConfig.MICRO_ROWS), kInPlace, vInPlace, d, dp);
        this.fusable = softcap <= 0f && queryScale == scale && !alibi;
        int blocks = shape.keyLen() / keyTile;
        long packedBytes = (long) shape.batch() * kvHeads * blocks * keyTile * d * Float.BYTES;
        if (fullTilePath.scores() == TilePath.Scores.PACKED_PRODUCT
                && tiles > 1
                && blocks > 0
                && packedBytes <= TileConfig.PACKED_KEYS_MAX_BYTES) {
            int heads = Math.multiplyExact(shape.batch(), kvHeads);
            this.packedKeys = new AtomicReferenceArray<>(heads);
            this.packLocks = new Object[heads];
            for (int i = 0; i < heads; i++) {
                packLocks[i] = new Object();
            }
            this.packedBlocks = blocks;
            this.pendingPerHead = new AtomicIntegerArray(heads);
            for (int i = 0; i < heads; i++) {
                pendingPerHead.set(i, Math.multiplyExact(tiles, plan.splits()));
            }
        } else {
            this.packedKeys = null;
            this.packLocks = null;
            this.packedBlocks = 0;
            this.pendingPerHead = null;
        }
        if (splits > 1) {
            // The plan bounds one sequence's partial states; a dense call holds one set per batch entry, all in one
            // array, so a large batch can pass the bound: refuse that before anything is written.
            long partials = (long) tileItems * splits * partRows * dvp;
            if (partials > ForwardPlan.MAX_PARTIAL_FLOATS) {
                throw new IllegalArgumentException("q: a batch of " + shape.batch() + " with " + splits
                        + " key splits per tile needs " + partials + " partial-output floats, more than the "
                        + ForwardPlan.MAX_PARTIAL_FLOATS + " a call holds; call with a smaller batch"
                        + (options.numSplits() > 0 ? " or a smaller numSplits" : ""));
            }
            int parts = tileItems * splits * partRows;
            partialO = new float[parts * dvp];
            partialM = new float[parts];
            partialL = new float[parts];
            pendingSplits = new AtomicIntegerArray(tileItems);
            for (int i = 0; i < tileItems; i++) {
                pendingSplits.set(i, splits);
            }
        } else {
            partialO = partialM = partialL = null;
            pendingSplits = null;
        }
        this.wide = math.wideBlocks()
                && fusable
                && masks == null
                && kCodes == null
                && vCodes == null
                && packedKeys != null
                && fullTilePath.scores() == TilePath.Scores.PACKED_PRODUCT
                && fullTilePath.values() == TilePath.Values.PACKED
                && d <= TileConfig.WIDE_MAX_HEAD_DIM
                && dv <= TileConfig.WIDE_MAX_HEAD_DIM;
    }

    /**
     * What the kernels multiply q by when they load it: the scale when {@code |scale| <= 1} and there is no softcap
     * (then {@code q * scale} cannot overflow), else 1, and the scale is applied to the scores instead (by the
     * softcap's tanh, or a pass over the scores): an extreme scale then overflows a score to an infinity, which
     * the softmax handles, instead of overflowing q into {@code inf - inf = NaN} in the dot product.
     */
    static float queryScale(AttentionOptions options, float scale) {
        return options.softcap() > 0f || !(Math.abs(scale) <= 1f) ? 1f : scale;
    }

    int items() {
        return order.length;
    }

    /** Items ordered so the tiles that see the most keys start first (causal: the bottom rows). */
    private int[] costliestFirst(int heads) {
        long[] cost = new long[tiles];
        for (int tile = 0; tile < tiles; tile++) {
            int firstQuery = tile * tileRows / group;
            int lastQuery = (Math.min(rows, (tile + 1) * tileRows) - 1) / group;
            for (int i = firstQuery; i <= lastQuery; i++) {
                cost[tile] += visibility.count(i);
            }
        }
        Integer[] byCost = IntStream.range(0, tiles).boxed().toArray(Integer[]::new);
        Arrays.sort(byCost, Comparator.comparingLong((Integer t) -> cost[t]).reversed());
        int[] items = new int[Math.multiplyExact(Math.multiplyExact(heads, tiles), splits)];
        int n = 0;
        for (int tile : byCost) {
            for (int head = 0; head < heads; head++) {
                for (int split = 0; split < splits; split++) {
                    items[n++] = (head * tiles + tile) * splits + split;
                }
            }
        }
        return items;
    }

    /** Computes the item at position {@code index} of the work order. */
    void run(int index, Scratch sc) {
        int item = order[index] / splits;
        int split = order[index] % splits;
        int tile = item % tiles;
        int b = item / tiles / kvHeads;
        int kvHead = item / tiles % kvHeads;
        int r0 = tile * tileRows;
        int n = Math.min(tileRows, rows - r0);
        int n4 = roundUp(n, TileConfig.MICRO_ROWS);
        TilePath path = tile == tiles - 1 ? lastTilePath : fullTilePath;
        sc.ensure(tileRows, keyTile, dp, dvp);
        boolean normalised = false;
        sweep(sc, path, b, kvHead, r0, n, n4, split, normalised);
        if (sc.overflow || !math.allFinite(sc.o, 0, n * dvp) || saturated(sc.m, n)) {
            // The unnormalised accumulator left the float range (values near the F32 maximum), the inputs hold a
            // NaN or an infinity, or a score overflowed (its float partial sums may have, where the exact sum
            // does not): the tile runs again with float64 dot products and the normalised accumulator, which
            // cannot overflow and skips pairs of probability 0 (a NaN that a row does see comes out again).
            normalised = true;
            sweep(sc, path, b, kvHead, r0, n, n4, split, normalised);
        }
        finish(sc, b, item, split, n, normalised);
        if (packedKeys != null && pendingPerHead.decrementAndGet(b * kvHeads + kvHead) == 0) {
            releasePanel(packedKeys.getAndSet(b * kvHeads + kvHead, null));
        }
    }

    /** Keeps a finished head's key panel for a later call, within the bound; drops it beyond. */
    private static void releasePanel(float[] panel) {
        if (panel == null) {
            return;
        }
        if (PANEL_FLOATS.addAndGet(panel.length) * Float.BYTES <= TileConfig.PACKED_KEYS_MAX_BYTES) {
            PANELS.offer(panel);
        } else {
            PANEL_FLOATS.addAndGet(-panel.length);
        }
    }

    /** A panel of {@code size} floats: a kept one of that size when there is one at hand, else a new one. */
    private static float[] takePanel(int size) {
        float[] panel = PANELS.poll();
        if (panel != null) {
            PANEL_FLOATS.addAndGet(-panel.length);
            if (panel.length == size) {
                return panel;
            }
        }
        return new float[size];
    }

    /**
     * The online softmax of one tile over its keys (this split's share of them), leaving the tile's running
     * max, sum and output in the scratch: with {@code normalised} the output is kept divided by the running sum.
     */
    private void sweep(
            Scratch sc, TilePath path, int b, int kvHead, int r0, int n, int n4, int split, boolean normalised) {
        KeyRange keys = loadQueries(sc, path, b, kvHead, r0, n, n4);
        sc.overflow = false;
        if (splits > 1 && keys.start() < keys.end()) {
            keys = keys.split(split, splits, keyTile);
        }
        for (int j0 = keys.start(), jn; j0 < keys.end(); j0 += jn) { // j0 + jn <= end: no overflow past 2^31 - 1
            jn = Math.min(keyTile, keys.end() - j0);
            int panels = normalised || !wide ? 0 : widePanels(sc, path, n, j0, keys.end());
            if (panels > 0) {
                jn = panels * keyTile;
                if (!wideBlock(sc, path, b, kvHead, n4, j0, jn)) {
                    sc.overflow = true; // a NaN or a max beyond the float range: the tile runs again exactly
                    return;
                }
                continue;
            }
            // The rows that see the block, in whole micro-kernel groups: on a causal diagonal or a window's edge the
            // products skip the others (which the softmax update gives zero probabilities and an alpha of 1)
            // instead of multiplying them into probabilities of zero.
            int from = firstRowSeeing(sc.first, sc.last, n, j0, j0 + jn - 1);
            if (from == n) {
                continue;
            }
            int to = roundUp(endOfRowsSeeing(sc.first, sc.last, from, n, j0, j0 + jn - 1), TileConfig.MICRO_ROWS);
            from -= from % TileConfig.MICRO_ROWS;
            BlockMask.Status status = masks == null ? BlockMask.Status.FULL : tileStatus(sc, b, n, j0, jn);
            if (status == BlockMask.Status.EMPTY) {
                continue;
            }
            boolean fused = false;
            if (normalised) {
                exactScores(sc, path, n4, b, kvHead, j0, jn);
            } else {
                fused = fusable
                        && jn == keyTile
                        && path.scores() == TilePath.Scores.PACKED_PRODUCT
                        && (masks == null || !masks.changesRows(status));
                if (fused) {
                    for (int t = 0; t < n4; t++) {
                        sc.fuse[t] = sc.first[t] <= j0 && sc.last[t] >= j0 + jn - 1;
                    }
                }
                scoreBlock(sc, path, from, to, n4, b, kvHead, j0, jn, fused);
            }
            // Short tiles read quantized values in place; the normalised sweep and prefill tiles pack them.
            boolean valueCodes = vCodes != null && path.scores() != TilePath.Scores.PACKED_PRODUCT && !normalised;
            // A heap F32 value tensor whose block lies one row stride apart is read in place by the P·V product: the
            // same floats as the copy, without the copy.
            boolean valuesInPlace = !normalised
                    && path.values() == TilePath.Values.PACKED
                    && vInPlace != null
                    && vInPlace.array() != null
                    && v.contiguousRows(j0, jn) == jn;
            if (path.values() == TilePath.Values.PACKED && !valueCodes && !valuesInPlace || normalised) {
                packRows(v, sc.v, dvp, b, kvHead, j0, jn);
            }
            updateSoftmax(sc, n4, b, j0, jn, status, normalised, fused);
            if (dropout) {
                dropout(sc, n4, j0);
            }
            if (normalised) {
                accumulateSeen(sc, n4, jn);
            } else if (valueCodes) {
                accumulateCodes(sc, n4, kvHead, j0, jn);
            } else if (path.values() == TilePath.Values.PACKED) {
                if (valuesInPlace) {
                    math.accumulateTile(
                            sc,
                            from,
                            to,
                            jn,
                            vInPlace.array(),
                            vInPlace.index(b, kvHead, v.storedRow(j0)),
                            vInPlace.rowStride(),
                            sc.alpha);
                } else {
                    math.accumulateTile(sc, from, to, jn, sc.v, 0, dvp, sc.alpha);
                }
            } else {
                accumulateInPlace(sc, n4, b, kvHead, j0, jn);
            }
        }
    }

    /**
     * How many whole key panels from {@code j0} the tile takes as one wide block ({@link TileConfig#WIDE_KEY_PANELS}
     * at most, at least 2), or 0: the path must be the packed product with packed or in-place values, and every row
     * of the tile must see every key of them (a causal tile's blocks left of its diagonal, every block without a
     * mask). Only the sequence's own shape decides, so the bits do not depend on the batch or the threads.
     */
    private int widePanels(Scratch sc, TilePath path, int n, int j0, int end) {
        if (path.scores() != TilePath.Scores.PACKED_PRODUCT || path.values() != TilePath.Values.PACKED) {
            return 0;
        }
        if (j0 % keyTile != 0 || j0 / keyTile >= packedBlocks) {
            return 0;
        }
        int panels = Math.min(TileConfig.WIDE_KEY_PANELS, Math.min((end - j0) / keyTile, packedBlocks - j0 / keyTile));
        if (panels < 2) {
            return 0;
        }
        int last = j0 + panels * keyTile - 1;
        for (int t = 0; t < n; t++) {
            if (sc.first[t] > j0 || sc.last[t] < last) {
                return 0;
            }
        }
        return panels;
    }

    /**
     * A wide block of {@code jn} keys from {@code j0} for all rows of the tile ({@link TileMath#wideBlock}). Its values
     * are packed even where they could be read in place: a group of rows reads all of them, and value rows one
     * strided tensor row apart (the columns of a fused QKV projection) fall on few cache sets.
     */
    private boolean wideBlock(Scratch sc, TilePath path, int b, int kvHead, int n4, int j0, int jn) {
        float[] values = sc.wideValues(TileConfig.WIDE_KEY_PANELS * keyTile * dvp);
        if (vInPlace != null && vInPlace.array() != null && v.contiguousRows(j0, jn) == jn) {
            // Whole vectors wide (dv == dvp), one stride apart: array copies, without a tensor read per row.
            float[] src = vInPlace.array();
            int at = vInPlace.index(b, kvHead, v.storedRow(j0));
            int stride = vInPlace.rowStride();
            for (int j = 0; j < jn; j++) {
                System.arraycopy(src, at + j * stride, values, j * dvp, dvp);
            }
        } else {
            packRows(v, values, dvp, b, kvHead, j0, jn);
        }
        return math.wideBlock(
                sc,
                path.qStride(),
                d,
                0,
                n4,
                packedKeys(b, kvHead),
                j0 / keyTile * d * keyTile,
                jn / keyTile,
                values,
                0,
                dvp,
                j0,
                dropout,
                dropoutThreshold,
                dropoutInverse);
    }

    /**
     * The normalised sweep's scores: each dot product summed in float64 and rounded once, so large finite q and
     * k whose float partial sums would overflow into {@code inf - inf = NaN} give the score's F32 value (an
     * infinity when it is beyond the F32 range), times the part of the scale the queries do not carry, also in
     * float64 (a zero scale times an overflowing product is 0, not NaN). Scalar, for the rare tiles the fast
     * sweep could not finish.
     */
    private void exactScores(Scratch sc, TilePath path, int n4, int b, int kvHead, int j0, int jn) {
        packRows(k, sc.kt, dp, b, kvHead, j0, jn);
        int qStride = path.qStride();
        double rest = queryScale == scale ? 1 : scale;
        for (int t = 0; t < n4; t++) {
            for (int j = 0; j < jn; j++) {
                double dot = 0;
                for (int x = 0; x < d; x++) {
                    dot += (double) sc.q[t * qStride + x] * sc.kt[j * dp + x];
                }
                sc.s[t * keyTile + j] = (float) (dot * rest);
            }
        }
    }

    /**
     * The normalised sweep's {@code o = alpha o + p v} over the packed block, skipping pairs of probability 0: a
     * value a row cannot see (or whose weight underflows) adds nothing even when it holds a NaN or an infinity,
     * where the SIMD product would add {@code 0 * NaN}. Scalar: it runs only for tiles whose fast sweep came out
     * non-finite.
     */
    private void accumulateSeen(Scratch sc, int n4, int jn) {
        float[] o = sc.o;
        float[] p = sc.s;
        float[] values = sc.v;
        for (int t = 0; t < n4; t++) {
            float alpha = sc.alpha[t];
            if (alpha != 1f) {
                for (int x = 0; x < dv; x++) {
                    o[t * dvp + x] *= alpha;
                }
            }
            for (int j = 0; j < jn; j++) {
                float weight = p[t * keyTile + j];
                if (weight != 0f) {
                    for (int x = 0; x < dv; x++) {
                        o[t * dvp + x] += weight * values[j * dvp + x];
                    }
                }
            }
        }
    }

    private static boolean saturated(float[] m, int n) {
        for (int t = 0; t < n; t++) {
            if (m[t] == Float.POSITIVE_INFINITY) {
                return true;
            }
        }
        return false;
    }

    /** The keys a tile's rows see together, {@code [start, end)}; empty when {@code start >= end}. */
    record KeyRange(int start, int end) {
        /**
         * Split {@code split} of {@code splits}: each takes a whole number of key blocks of the range, the last
         * ones what is left (possibly nothing). In long arithmetic: a range may reach {@code 2^31 - 1}.
         */
        KeyRange split(int split, int splits, int keyTile) {
            long perSplit = Math.ceilDiv(Math.ceilDiv((long) end - start, splits), keyTile) * keyTile;
            long from = Math.min(end, start + split * perSplit);
            return new KeyRange((int) from, (int) Math.min(end, from + perSplit));
        }
    }

    /**
     * Fills the tile's scratch for rows {@code r0 .. r0 + n - 1} (padded to {@code n4}): scaled queries (also
     * transposed when the path scores by key), each row's query, head and visible keys, and the running max, sum
     * and output at their starting values. Returns the keys that some row sees.
     */
    private KeyRange loadQueries(Scratch sc, TilePath path, int b, int kvHead, int r0, int n, int n4) {
        int qStride = path.qStride();
        float[] qt = sc.q;
        int[] first = sc.first;
        int[] last = sc.last;
        int keyStart = Integer.MAX_VALUE;
        int keyEnd = 0;
        for (int t = 0; t < n4; t++) {
            if (t < n) {
                int r = r0 + t;
                int i = r / group;
                int head = kvHead * group + r % group;
                sc.qRow[t] = i;
                sc.qHead[t] = head;
                sc.slope[t] = options.alibiSlope(batchBase + b, head);
                if (dropout) {
                    long key = Dropout.rowKey(dropoutSeed, batchBase + b, head, i);
                    sc.dropLo[t] = (int) key;
                    sc.dropHi[t] = (int) (key >>> 32);
                }
                first[t] = visibility.first(i);
                last[t] = visibility.last(i);
                if (first[t] <= last[t]) {
                    keyStart = Math.min(keyStart, first[t]);
                    keyEnd = Math.max(keyEnd, last[t] + 1);
                }
                if (qArray != null) {
                    math.scaleTo(qArray.array(), qArray.index(b, head, i), d, queryScale, qt, t * qStride);
                } else {
                    q.readRow(b, head, i, qt, t * qStride);
                    math.scale(qt, t * qStride, d, queryScale);
                }
                Arrays.fill(qt, t * qStride + d, (t + 1) * qStride, 0f);
            } else {
                first[t] = 1; // padding rows see nothing
                last[t] = 0;
                Arrays.fill(qt, t * qStride, (t + 1) * qStride, 0f);
            }
            sc.m[t] = Float.NEGATIVE_INFINITY;
            sc.l[t] = 0f;
        }
        Arrays.fill(sc.o, 0, n4 * dvp, 0f);
        sc.qRebiased = kCodes != null && path.scores() == TilePath.Scores.COPIED_BY_ROW
                ? math.rebiasQueries(kCodes.format(), qt, n4 * qStride, sc.rebiasBuffer(n4 * qStride))
                : null;
        if (path.transposedQueries()) {
            int cols = math.queryColumns(n4);
            for (int x = 0; x < d; x++) {
                for (int c = 0; c < cols; c++) {
                    sc.qCols[x * cols + c] = c < n4 ? qt[c * qStride + x] : 0f;
                }
            }
        }
        return new KeyRange(keyStart, keyEnd);
    }

    /**
     * The tile's scores against keys {@code [j0, j0 + jn)} into {@code sc.s}, as its path takes them: the packed
     * product over rows {@code [from, to)} (the rows that see the block), the other paths over all {@code n4}.
     */
    private void scoreBlock(
            Scratch sc, TilePath path, int from, int to, int n4, int b, int kvHead, int j0, int jn, boolean fused) {
        switch (path.scores()) {
            case PACKED_PRODUCT -> {
                float[] panel = sc.kt;
                int panelOff = 0;
                if (packedKeys != null && jn == keyTile && j0 % keyTile == 0) {
                    panel = packedKeys(b, kvHead);
                    panelOff = j0 / keyTile * d * keyTile;
                } else {
                    packKeys(sc, b, kvHead, j0, jn);
                }
                if (!fused) { // the product alone, in the same register blocks
                    Arrays.fill(sc.fuse, 0, n4, false);
                }
                math.multiplySoftmax(sc.q, from, to, d, panel, panelOff, sc.s, sc.fuse, sc.m, sc.l, sc.alpha);
            }
            case COPIED_BY_ROW -> {
                if (kCodes != null) {
                    scoresFromCodes(sc, n4, kvHead, j0, jn);
                } else {
                    packRows(k, sc.kt, dp, b, kvHead, j0, jn);
                    math.scoresByRow(sc.q, n4, dp, sc.kt, 0, dp, jn, sc.s, 0);
                }
            }
            case IN_PLACE_BY_KEY,
                    IN_PLACE_ARRAY_BY_ROW,
                    IN_PLACE_SEGMENT_BY_ROW,
                    IN_PLACE_HALVES_BY_ROW,
                    IN_PLACE_HALF_SEGMENT_BY_ROW -> scoresInPlace(sc, n4, path.scores(), b, kvHead, j0, jn);
        }
    }

    /**
     * The online-softmax update of one key block: per row, the score pipeline (softcap, ALiBi, the masks' hook,
     * {@code -inf} outside the row's visible keys), then the new running max, the rescale {@code alpha} of what the
     * row accumulated so far, and the probabilities {@code exp(s - max)} in place with their sum added to the
     * row's. Rows that see no key of the block get zero probabilities and an alpha of 1.
     *
     * <p>{@code normalised}: the probabilities are divided by the new running sum and alpha carries the ratio of
     * the old sum to the new, so the output stays a convex combination of values ({@code |o| <= max |v|}). A score
     * of {@code +inf} (a finite q.k beyond the float range) saturates the row: its {@code +inf} keys share it
     * equally and all others, earlier blocks included, weigh nothing.
     *
     * <p>{@code fused}: the score kernel already did this update for the rows {@code sc.fuse} marks (rows that see
     * the whole block, {@link TileMath#multiplySoftmax}), which are skipped here.
     */
    private void updateSoftmax(
            Scratch sc, int n4, int b, int j0, int jn, BlockMask.Status status, boolean normalised, boolean fused) {
        float[] s = sc.s;
        float[] m = sc.m;
        float[] l = sc.l;
        float[] alpha = sc.alpha;
        boolean maskRows = masks != null && masks.changesRows(status);
        for (int t = 0; t < n4; t++) {
            if (fused && sc.fuse[t]) { // the score kernel did this row's update
                continue;
            }
            int off = t * keyTile;
            int lo = Math.max(sc.first[t] - j0, 0);
            int hi = Math.min(sc.last[t] - j0, jn - 1);
            if (lo > hi) {
                Arrays.fill(s, off, off + keyTile, 0f);
                alpha[t] = 1f;
                continue;
            }
            if (softcap > 0f) {
                // The tanh would turn an overflowed dot product (whose exact value may differ, even in sign) into
                // a plausible finite score: such a tile runs again exactly.
                if (!normalised && !math.allFinite(s, off, keyTile)) {
                    sc.overflow = true;
                }
                math.softcap(s, off, keyTile, normalised ? 1f : scale, softcap); // exactScores applied the scale
            } else if (queryScale != scale && !normalised) {
                math.scale(s, off, keyTile, scale);
            }
            if (alibi) {
                float center = (float) (sc.qRow[t] + visibility.offset() - j0);
                math.alibi(s, off, keyTile, sc.slope[t], center);
            }
            if (maskRows) {
                masks.row(s, off, b, sc.qHead[t], sc.qRow[t], j0, lo, hi, status == BlockMask.Status.FULL);
            }
            Arrays.fill(s, off, off + lo, Float.NEGATIVE_INFINITY);
            Arrays.fill(s, off + hi + 1, off + keyTile, Float.NEGATIVE_INFINITY);
            float mNew = Math.max(m[t], math.max(s, off, keyTile));
            if (mNew == Float.NEGATIVE_INFINITY) { // a mask hid every key the row has met so far
                Arrays.fill(s, off, off + keyTile, 0f);
                alpha[t] = 1f;
                continue;
            }
            float blockSum;
            if (mNew == Float.POSITIVE_INFINITY) {
                alpha[t] = m[t] == Float.POSITIVE_INFINITY ? 1f : 0f;
                blockSum = saturate(s, off, keyTile);
            } else {
                // Once a row's max settles it rarely moves: skip the scalar exp then (exp(0) is exactly 1).
                alpha[t] = mNew == m[t] ? 1f : (float) Math.exp(m[t] - mNew); // 0 when m was -inf
                blockSum = math.expSum(s, off, keyTile, mNew);
            }
            float lNew = l[t] * alpha[t] + blockSum;
            if (normalised) {
                float inverse = 1f / lNew;
                math.scale(s, off, keyTile, inverse);
                alpha[t] *= l[t] * inverse;
            }
            l[t] = lNew;
            m[t] = mNew;
        }
    }

    /**
     * Dropout on the block's probabilities, after {@link #updateSoftmax} took their sums (so the LSE is the undropped
     * softmax's) and before they multiply the values. A loop of its own: inside the large softmax update the JIT
     * compiled the mask's vector code several times slower.
     */
    private void dropout(Scratch sc, int n4, int j0) {
        for (int t = 0; t < n4; t++) {
            math.dropoutRow(
                    sc.s, t * keyTile, keyTile, j0, sc.dropLo[t], sc.dropHi[t], dropoutThreshold, dropoutInverse);
        }
    }

    /** A saturated row's probabilities: 1 for a score of {@code +inf}, 0 for any other; returns their sum. */
    private static float saturate(float[] s, int off, int n) {
        float count = 0f;
        for (int i = off; i < off + n; i++) {
            s[i] = s[i] == Float.POSITIVE_INFINITY ? 1f : 0f;
            count += s[i];
        }
        return count;
    }

    /**
     * Writes the tile's rows, or with split keys stores this split's partial state and, for the split that
     * finishes the tile last, merges them all.
     */
    private void finish(Scratch sc, int b, int item, int split, int n, boolean normalised) {
        if (splits == 1) {
            for (int t = 0; t < n; t++) {
                writeRow(sc, b, t, sc.o, t * dvp, sc.m[t], sc.l[t], normalised);
            }
            return;
        }
        int part = (item * splits + split) * partRows;
        if (!normalised) { // partial states are stored normalised, so their merge is a convex combination
            for (int t = 0; t < n; t++) {
                if (sc.l[t] != 0f) {
                    math.scale(sc.o, t * dvp, dvp, 1f / sc.l[t]);
                }
            }
        }
        System.arraycopy(sc.o, 0, partialO, part * dvp, n * dvp);
        System.arraycopy(sc.m, 0, partialM, part, n);
        System.arraycopy(sc.l, 0, partialL, part, n);
        if (pendingSplits.decrementAndGet(item) == 0) {
            mergeSplits(sc, b, item, n);
        }
    }

    /**
     * A short tile's scores against keys {@code [j0, j0 + jn)} read in place: one call per run of rows
     * stored one stride apart (the whole block for a tensor, each run of adjacent blocks of a paged cache),
     * by key or by row from the array, by row from the segment, or by row from 16-bit rows (array or segment), as {@code scores} says.
     */
    private void scoresInPlace(Scratch sc, int n4, TilePath.Scores scores, int b, int kvHead, int j0, int jn) {
        InPlaceRows rows = kInPlace;
        for (int j = j0, end = j0 + jn; j < end; ) {
            int count = k.contiguousRows(j, end - j);
            int stored = k.storedRow(j);
            if (scores == TilePath.Scores.IN_PLACE_BY_KEY) {
                math.scoresByKey(
                        sc.qCols,
                        n4,
                        d,
                        rows.array(),
                        rows.index(b, kvHead, stored),
                        rows.rowStride(),
                        count,
                        sc.sCols,
                        sc.s,
                        j - j0);
            } else if (scores == TilePath.Scores.IN_PLACE_HALVES_BY_ROW) {
                math.scoresByRow(
                        sc.q,
                        n4,
                        dp,
                        rows.halves(),
                        rows.index(b, kvHead, stored),
                        rows.rowStride(),
                        rows.bf16(),
                        count,
                        sc.s,
                        j - j0);
            } else if (scores == TilePath.Scores.IN_PLACE_HALF_SEGMENT_BY_ROW) {
                math.scoresByRow(
                        sc.q,
                        n4,
                        dp,
                        rows.memory(),
                        rows.byteOffset(b, kvHead, stored),
                        rows.rowBytes(),
                        rows.bf16(),
                        count,
                        sc.s,
                        j - j0);
            } else if (scores == TilePath.Scores.IN_PLACE_ARRAY_BY_ROW) {
                math.scoresByRow(
                        sc.q,
                        n4,
                        dp,
                        rows.array(),
                        rows.index(b, kvHead, stored),
                        rows.rowStride(),
                        count,
                        sc.s,
                        j - j0);
            } else {
                math.scoresByRow(
                        sc.q,
                        n4,
                        dp,
                        rows.memory(),
                        rows.byteOffset(b, kvHead, stored),
                        rows.rowBytes(),
                        count,
                        sc.s,
                        j - j0);
            }
            j += count;
        }
    }

    /**
     * A short tile's scores against quantized keys {@code [j0, j0 + jn)} read in place: the tile's runs (one block's
     * keys each) with their offsets, scales and flags gathered first, then one kernel call over all of them.
     */
    private void scoresFromCodes(Scratch sc, int n4, int kvHead, int j0, int jn) {
        int runs = 0;
        long abnormal = 0;
        for (int j = j0, end = j0 + jn; j < end; runs++) {
            int count = kCodes.runLength(j, end - j);
            sc.runOffsets[runs] = kCodes.codeOffset(kvHead, j);
            sc.runKeys[runs] = count;
            sc.runScales[runs] = kCodes.scale(kvHead, j);
            abnormal |= abnormalRows(kCodes, kvHead, j, count) << (j - j0);
            j += count;
        }
        math.quantizedScores(
                sc.q,
                sc.qRebiased,
                n4,
                dp,
                kCodes.format(),
                kCodes.codes(),
                kCodes.keyStride(),
                d,
                runs,
                sc.runOffsets,
                sc.runKeys,
                sc.runScales,
                abnormal,
                sc.s,
                0);
    }

    /**
     * The kernels' {@code abnormal} for a run of {@code count} quantized keys or values from {@code j}: the cache's
     * row flags where it keeps them, else a scan of the run's codes in their layout; 0 for INT8.
     */
    private long abnormalRows(QuantRows rows, int kvHead, int j, int count) {
        if (rows.format() == dev.aule.spi.QuantizedKv.Format.INT8) {
            return 0;
        }
        if (rows.hasRowFlags()) {
            return rows.abnormalRows(kvHead, j, count);
        }
        int off = rows.codeOffset(kvHead, j);
        return rows.keys()
                ? math.abnormalKeys(rows.format(), rows.codes(), off, rows.keyStride(), rows.headDim(), count)
                : math.abnormalRows(rows.format(), rows.codes(), off, rows.headDim(), count);
    }

    /**
     * A short tile's {@code o = alpha o + p v} over quantized values {@code [j0, j0 + jn)} read in place, one
     * block's run at a time; the first run applies the rescale, later ones add to the rescaled rows.
     */
    private void accumulateCodes(Scratch sc, int n4, int kvHead, int j0, int jn) {
        float[] alpha = sc.alpha;
        for (int j = j0, end = j0 + jn; j < end; ) {
            int count = vCodes.runLength(j, end - j);
            math.accumulate(
                    sc,
                    n4,
                    count,
                    j - j0,
                    vCodes.format(),
                    vCodes.codes(),
                    vCodes.codeOffset(kvHead, j),
                    dv,
                    vCodes.scale(kvHead, j),
                    dropout ? dropoutInverse : 1f, // softmax probabilities, times the dropout's factor
                    abnormalRows(vCodes, kvHead, j, count),
                    alpha);
            alpha = sc.ones;
            j += count;
        }
    }

    /**
     * A short tile's {@code o = alpha o + p v} over values {@code [j0, j0 + jn)} read in place, run by run as
     * {@link #scoresInPlace}; the first run applies the rescale, later ones add to the rescaled rows.
     */
    private void accumulateInPlace(Scratch sc, int n4, int b, int kvHead, int j0, int jn) {
        InPlaceRows rows = vInPlace;
        float[] alpha = sc.alpha;
        for (int j = j0, end = j0 + jn; j < end; ) {
            int count = v.contiguousRows(j, end - j);
            int stored = v.storedRow(j);
            if (rows.halves() != null) {
                math.accumulate(
                        sc,
                        n4,
                        count,
                        j - j0,
                        rows.halves(),
                        rows.index(b, kvHead, stored),
                        rows.rowStride(),
                        rows.bf16(),
                        alpha);
            } else if (rows.half()) {
                math.accumulate(
                        sc,
                        n4,
                        count,
                        j - j0,
                        rows.memory(),
                        rows.byteOffset(b, kvHead, stored),
                        rows.rowBytes(),
                        rows.bf16(),
                        alpha);
            } else if (rows.array() != null) {
                math.accumulate(
                        sc, n4, count, j - j0, rows.array(), rows.index(b, kvHead, stored), rows.rowStride(), alpha);
            } else {
                math.accumulate(
                        sc,
                        n4,
                        count,
                        j - j0,
                        rows.memory(),
                        rows.byteOffset(b, kvHead, stored),
                        rows.rowBytes(),
                        alpha);
            }
            alpha = sc.ones;
            j += count;
        }
    }

    /**
     * Combines a tile's split partials, run by whichever worker finishes the last split (the
     * atomic countdown orders the other splits' writes before it). Splits merge in index order,
     * so the result does not depend on which worker ran what.
     */
    private void mergeSplits(Scratch sc, int b, int item, int n) {
        float[] merged = sc.o;
        int base = item * splits * partRows;
        for (int t = 0; t < n; t++) {
            float max = Float.NEGATIVE_INFINITY;
            for (int split = 0; split < splits; split++) {
                max = Math.max(max, partialM[base + split * partRows + t]);
            }
            float sum = 0f;
            Arrays.fill(merged, t * dvp, t * dvp + dv, 0f);
            if (max != Float.NEGATIVE_INFINITY) {
                for (int split = 0; split < splits; split++) {
                    sum += splitWeight(base + split * partRows + t, max);
                }
                for (int split = 0; split < splits; split++) {
                    int at = base + split * partRows + t;
                    float weight = splitWeight(at, max) / sum;
                    if (weight == 0f) {
                        continue;
                    }
                    for (int x = 0; x < dv; x++) {
                        merged[t * dvp + x] += weight * partialO[at * dvp + x];
                    }
                }
            }
            writeRow(sc, b, t, merged, t * dvp, max, sum, true);
        }
    }

    /**
     * A split's share of its row before normalisation: its sum relative to the row's max; 0 for a split that
     * saw nothing, and under a saturated ({@code +inf}) max for every split that is not saturated too.
     */
    private float splitWeight(int at, float max) {
        float m = partialM[at];
        return m == max ? partialL[at] : (float) Math.exp(m - max) * partialL[at];
    }

    /**
     * Writes one accumulated row ({@code acc[at, at+dv)} with running max and sum; divided by the sum unless
     * {@code normalised}) to out, and its lse.
     */
    private void writeRow(Scratch sc, int b, int t, float[] acc, int at, float max, float sum, boolean normalised) {
        float[] row = sc.row;
        float rowLse;
        if (sum == 0f) {
            Arrays.fill(row, 0, dv, 0f);
            out.writeRow(b, sc.qHead[t], sc.qRow[t], row, 0);
            rowLse = options.sink(sc.qHead[t]); // -inf without sinks; with them the sink takes all the weight
        } else {
            float inverse = normalised ? 1f : 1f / sum;
            rowLse = max + (float) Math.log(sum);
            if (sinks && max != Float.POSITIVE_INFINITY) {
                // The sink term, once per row and after any split merge: lse' = log(exp(lse) + exp(sink)), and the
                // row (the softmax over its keys) shrinks by exp(lse - lse'). In float64, from max and sum, so a
                // sink far above or below the keys' scores neither overflows nor rounds the row's weight away.
                double keysLse = max + Math.log(sum);
                double sink = options.sink(sc.qHead[t]);
                double top = Math.max(keysLse, sink);
                double total = top + Math.log(Math.exp(keysLse - top) + Math.exp(sink - top));
                inverse = (float) (inverse * Math.exp(keysLse - total));
                rowLse = (float) total;
            }
            if (outArray != null) {
                math.scaleTo(acc, at, dv, inverse, outArray.array(), outArray.index(b, sc.qHead[t], sc.qRow[t]));
            } else {
                for (int x = 0; x < dv; x++) {
                    row[x] = acc[at + x] * inverse;
                }
                out.writeRow(b, sc.qHead[t], sc.qRow[t], row, 0);
            }
        }
        if (lse != null) {
            lse.set(b, sc.qHead[t], sc.qRow[t], 0, rowLse);
        }
    }

    /** The BlockMask's verdict on this tile's rows (their query and head ranges) against keys {@code [j0, j0 + jn)}. */
    private BlockMask.Status tileStatus(Scratch sc, int b, int n, int j0, int jn) {
        int h0 = Integer.MAX_VALUE;
        int h1 = 0;
        for (int t = 0; t < Math.min(n, group); t++) {
            h0 = Math.min(h0, sc.qHead[t]);
            h1 = Math.max(h1, sc.qHead[t]);
        }
        return masks.tile(b, h0, h1, sc.qRow[0], sc.qRow[n - 1], j0, j0 + jn - 1);
    }

    /** The first of a tile's {@code n} rows that sees a key of {@code [j0, j1]}, {@code n} when none does. */
    private static int firstRowSeeing(int[] first, int[] last, int n, int j0, int j1) {
        int t = 0;
        while (t < n && !sees(first[t], last[t], j0, j1)) {
            t++;
        }
        return t;
    }

    /** One past the last of a tile's {@code n} rows that sees a key of {@code [j0, j1]}; row {@code from} does. */
    private static int endOfRowsSeeing(int[] first, int[] last, int from, int n, int j0, int j1) {
        int end = n;
        while (end > from + 1 && !sees(first[end - 1], last[end - 1], j0, j1)) {
            end--;
        }
        return end;
    }

    private static boolean sees(int first, int last, int j0, int j1) {
        return first <= j1 && last >= j0 && first <= last;
    }

    /**
     * The call's transposed whole key blocks of one KV head ({@link #packedKeys}), packed on first use: the first
     * worker to ask packs them while any other asking for the same head waits; heads differ per worker in the
     * usual work order, so the packing spreads over the workers too.
     */
    private float[] packedKeys(int b, int kvHead) {
        int h = b * kvHeads + kvHead;
        float[] packed = packedKeys.get(h);
        if (packed != null) {
            return packed;
        }
        synchronized (packLocks[h]) {
            packed = packedKeys.get(h);
            if (packed == null) {
                packed = takePanel(packedBlocks * d * keyTile); // every float is written below
                float[] rows = new float[keyTile * d];
                boolean array = kInPlace != null && kInPlace.array() != null;
                for (int block = 0; block < packedBlocks; block++) {
                    int base = block * d * keyTile;
                    int j0 = block * keyTile;
                    if (array && k.contiguousRows(j0, keyTile) == keyTile) {
                        // Straight from the tensor's array, one stride apart: no tensor read per row.
                        float[] src = kInPlace.array();
                        int at = kInPlace.index(b, kvHead, k.storedRow(j0));
                        int stride = kInPlace.rowStride();
                        for (int j = 0; j < keyTile; j++) {
                            for (int x = 0, pos = base + j, from = at + j * stride; x < d; x++, pos += keyTile) {
                                packed[pos] = src[from + x];
                            }
                        }
                        continue;
                    }
                    k.readRows(math, b, kvHead, j0, keyTile, rows, 0, d);
                    for (int j = 0; j < keyTile; j++) {
                        for (int x = 0, pos = base + j; x < d; x++, pos += keyTile) {
                            packed[pos] = rows[j * d + x];
                        }
                    }
                }
                packedKeys.set(h, packed);
            }
        }
        return packed;
    }

    /** kt[x][j] = k[j0 + j][x]; columns past {@code jn} are zero. */
    private void packKeys(Scratch sc, int b, int kvHead, int j0, int jn) {
        float[] kt = sc.kt;
        float[] row = sc.row;
        for (int j = 0; j < jn; j++) {
            k.readRows(math, b, kvHead, j0 + j, 1, row, 0, d);
            for (int x = 0, pos = j; x < d; x++, pos += keyTile) {
                kt[pos] = row[x];
            }
        }
        if (jn < keyTile) {
            for (int x = 0; x < d; x++) {
                Arrays.fill(kt, x * keyTile + jn, (x + 1) * keyTile, 0f);
            }
        }
    }

    /** {@code dst[j][x] = t[j0 + j][x]}, rows {@code stride} apart, each zero-padded from the head dim to the stride. */
    private void packRows(KvRows t, float[] dst, int stride, int b, int head, int j0, int jn) {
        t.readRows(math, b, head, j0, jn, dst, 0, stride);
        int dim = t.headDim();
        if (stride > dim) {
            for (int j = 0; j < jn; j++) {
                Arrays.fill(dst, j * stride + dim, (j + 1) * stride, 0f);
            }
        }
    }

    /** {@code t}'s rows through its {@code float[]} when it is F32 over one with unit element stride, else null. */
    private static InPlaceRows arrayRows(Tensor t) {
        if (t.dtype() != DType.F32 || t.strides()[3] != 1 || t.memory().address() % Float.BYTES != 0) {
            return null;
        }
        InPlaceRows rows = InPlaceRows.of(t, 1);
        return rows != null && rows.array() != null ? rows : null;
    }

    private static int roundUp(int x, int multiple) {
        return (x + multiple - 1) / multiple * multiple;
    }
}
