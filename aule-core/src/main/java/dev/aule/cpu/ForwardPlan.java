package dev.aule.cpu;

import dev.aule.spi.Visibility;

/**
 * How the forward cuts one sequence into work items: query rows per tile and the parts each tile's key range is
 * split into (flash-decoding). Both change the order of the floating-point sums, so both are a function of the
 * sequence's own shape only (its rows, KV heads, padded head dims and visible keys) and never of the pool size,
 * the batch size or the other sequences of a call: a sequence's bits are the same alone, in any batch and on any
 * number of threads.
 *
 * <p>Maintainer invariants: {@code tileRows} is a power of two in {@code [MIN_TILE_ROWS, MAX_TILE_ROWS]};
 * {@code tiles * tileRows >= rows}; {@code 1 <= splits <= MAX_SPLITS}. Planned automatically ({@code numSplits} 0),
 * {@code splits > 1} only when the sequence has fewer than {@link TileConfig#SPLIT_BELOW_TILES} tiles, and the partial
 * states of a split sequence take at most {@link TileConfig#SPLIT_PARTIAL_BYTES} (or one part per tile, if a single
 * part is larger); an explicit {@code numSplits} overrides both bounds but never passes the widest row's keys or
 * {@link #MAX_PARTIAL_FLOATS} floats of partial outputs.
 *
 * @param tileRows query rows per tile (of a KV head's query group, query-major)
 * @param tiles    tiles per KV head
 * @param splits   parts each tile's key range is cut into, 1 when it is not split
 */
record ForwardPlan(int tileRows, int tiles, int splits) {

    /**
     * The plan of a sequence whose KV heads each have {@code rows} query rows (queries times the GQA group), head
     * dims padded to {@code dp} and {@code dvp}, and keys seen as {@code visibility} says.
     */
    static ForwardPlan of(int rows, int kvHeads, int dp, int dvp, Visibility visibility) {
        return of(rows, kvHeads, dp, dvp, visibility, 0);
    }

    /**
     * {@link #of(int, int, int, int, Visibility)} with the call's {@code numSplits} option: 0 plans the splits as
     * above; {@code n >= 1} takes exactly {@code min(n, keys, MAX_SPLITS)} parts, {@code keys} being the most keys
     * a row sees (at least 1), whatever the tile count and the partial-state budget (the caller asked for them),
     * and no more than keep the partial outputs of all its tiles within {@link #MAX_PARTIAL_FLOATS}.
     * Either way the plan is a function of the option and the sequence's shape alone.
     */
    static ForwardPlan of(int rows, int kvHeads, int dp, int dvp, Visibility visibility, int numSplits) {
        int tileRows = tileRows(dp, dvp, rows, kvHeads);
        int tiles = Math.ceilDiv(rows, tileRows);
        long tileItems = (long) kvHeads * tiles;
        int splits;
        if (numSplits > 0) {
            // The partial states of one sequence's parts live in one float array: the request stops at a bound of
            // the sequence's shape (like the rest of the plan), so it cannot make a call allocate gigabytes.
            long perPart = tileItems * Math.min(tileRows, rows) * (long) dvp;
            long byArray = Math.max(1, MAX_PARTIAL_FLOATS / perPart);
            splits = (int) Math.min(requestedSplits(numSplits, widestRow(visibility)), byArray);
        } else {
            splits = tileItems >= TileConfig.SPLIT_BELOW_TILES
                    ? 1
                    : splits(tileItems, Math.min(tileRows, rows), dvp, widestRow(visibility));
        }
        return new ForwardPlan(tileRows, tiles, splits);
    }

    /**
     * The most partial-output floats one sequence's explicitly requested split parts may hold (256 MiB): a
     * {@code numSplits} past it on a long prefill is cut to fit, so a request cannot make one call allocate gigabytes.
     */
    static final long MAX_PARTIAL_FLOATS = 1L << 26;

    /** The parts a {@code numSplits} of {@code requested >= 1} gives a sequence whose widest row sees {@code keys}. */
    static int requestedSplits(int requested, int keys) {
        return Math.min(Math.min(requested, Math.max(keys, 1)), TileConfig.MAX_SPLITS);
    }

    /**
     * Rows per tile: the largest power of two within {@link TileConfig#TILE_BUDGET_BYTES} and
     * {@link TileConfig#MAX_TILE_ROWS}, halved (down to {@link TileConfig#MIN_TILE_ROWS}) while the sequence
     * would have fewer than {@link TileConfig#SEQUENCE_TILES} tiles over its KV heads.
     */
    static int tileRows(int dp, int dvp, int rows, int kvHeads) {
        int fit = TileConfig.TILE_BUDGET_BYTES / ((dp + dvp) * Float.BYTES);
        int tileRows = TileConfig.MIN_TILE_ROWS;
        while (tileRows * 2 <= Math.min(fit, TileConfig.MAX_TILE_ROWS)) {
            tileRows *= 2;
        }
        while (tileRows > TileConfig.MIN_TILE_ROWS
                && (long) kvHeads * Math.ceilDiv(rows, tileRows) < TileConfig.SEQUENCE_TILES) {
            tileRows /= 2;
        }
        return tileRows;
    }

    /**
     * Parts of at most {@link TileConfig#SPLIT_KEYS} of the {@code keys} the widest row sees, at most
     * {@link TileConfig#MAX_SPLITS}, and no more than keep the partial states of {@code tileItems} tiles of
     * {@code partRows} rows ({@code dvp} floats of output, a max and a sum each) within
     * {@link TileConfig#SPLIT_PARTIAL_BYTES}.
     */
    static int splits(long tileItems, int partRows, int dvp, int keys) {
        long bySize = Math.ceilDiv(Math.max(keys, 1), TileConfig.SPLIT_KEYS);
        long partBytes = tileItems * partRows * (dvp + 2L) * Float.BYTES; // o, then max and sum
        long byMemory = Math.max(1, TileConfig.SPLIT_PARTIAL_BYTES / partBytes);
        return (int) Math.min(Math.min(bySize, byMemory), TileConfig.MAX_SPLITS);
    }

    /** The most keys one query row of the sequence sees. */
    private static int widestRow(Visibility visibility) {
        int widest = 0;
        for (int i = 0; i < visibility.queryLen(); i++) {
            widest = Math.max(widest, visibility.count(i));
        }
        return widest;
    }
}
