package dev.aule.cpu;

/**
 * How one forward tile reads its keys and values and takes its scores, chosen once from the tile's row count
 * and whether the keys and values can be read in place. Every condition on the path is here:
 * <ul>
 *   <li>more than {@link TileConfig#SHORT_TILE_MAX_ROWS} rows (prefill): keys packed transposed and scored by the
 *       general product, values packed;</li>
 *   <li>a short tile (decode) whose keys cannot be read in place: keys copied row-major, scored by row;</li>
 *   <li>a short tile with keys in place: F16/BF16 keys by row from their {@code short[]} or segment, widened in
 *       registers;
 *       F32 keys by key (query rows along the lanes) for more than {@link TileConfig#BY_ROW_MAX_ROWS} rows when
 *       the keys are a {@code float[]} (scoresByKey has only an array form), else by row from the array or from
 *       the segment;</li>
 *   <li>values in place (from the float or 16-bit array, or the segment) in a short tile whose values allow it,
 *       else packed.</li>
 * </ul>
 *
 * @param scores   how the tile's scores are taken
 * @param values   where the tile's values are read from
 * @param qStride  floats between the tile's query rows: the padded head dim for row-major scores, the head dim
 *                 for the general product
 */
record TilePath(Scores scores, Values values, int qStride) {

    /** How the scores of a key block are taken. */
    enum Scores {
        /** Keys packed transposed into scratch, then {@link TileMath#multiply}. */
        PACKED_PRODUCT,
        /** Keys copied row-major into scratch, then {@link TileMath#scoresByRow}. */
        COPIED_BY_ROW,
        /** Keys read in place from their {@code float[]}, {@link TileMath#scoresByKey}. */
        IN_PLACE_BY_KEY,
        /** Keys read in place from their {@code float[]}, {@link TileMath#scoresByRow}. */
        IN_PLACE_ARRAY_BY_ROW,
        /** Keys read in place from their memory segment, {@link TileMath#scoresByRow}. */
        IN_PLACE_SEGMENT_BY_ROW,
        /** F16 or BF16 keys read in place from their {@code short[]} and widened in registers. */
        IN_PLACE_HALVES_BY_ROW,
        /** F16 or BF16 keys read in place from their memory segment and widened in registers. */
        IN_PLACE_HALF_SEGMENT_BY_ROW
    }

    /** Where a key block's values come from for {@link TileMath#accumulate}. */
    enum Values {
        /** Copied into the scratch value block. */
        PACKED,
        /** Read in place from their {@code float[]}. */
        IN_PLACE_ARRAY,
        /** Read in place from their memory segment. */
        IN_PLACE_SEGMENT,
        /** F16 or BF16 values read in place from their {@code short[]} and widened in registers. */
        IN_PLACE_HALVES,
        /** F16 or BF16 values read in place from their memory segment and widened in registers. */
        IN_PLACE_HALF_SEGMENT
    }

    /**
     * The path of a tile of {@code rows4} rows (its row count rounded up to {@link TileConfig#MICRO_ROWS}), with
     * keys and values in place where {@code keys} and {@code values} are non-null, head dim {@code d} padded to
     * {@code dp}.
     */
    static TilePath of(int rows4, InPlaceRows keys, InPlaceRows values, int d, int dp) {
        if (rows4 > TileConfig.SHORT_TILE_MAX_ROWS) {
            return new TilePath(Scores.PACKED_PRODUCT, Values.PACKED, d);
        }
        Scores scores;
        if (keys == null) {
            scores = Scores.COPIED_BY_ROW;
        } else if (keys.half()) {
            scores = keys.halves() != null ? Scores.IN_PLACE_HALVES_BY_ROW : Scores.IN_PLACE_HALF_SEGMENT_BY_ROW;
        } else if (keys.array() == null) {
            scores = Scores.IN_PLACE_SEGMENT_BY_ROW;
        } else {
            scores = rows4 > TileConfig.BY_ROW_MAX_ROWS ? Scores.IN_PLACE_BY_KEY : Scores.IN_PLACE_ARRAY_BY_ROW;
        }
        Values read;
        if (values == null) {
            read = Values.PACKED;
        } else if (values.half()) {
            read = values.halves() != null ? Values.IN_PLACE_HALVES : Values.IN_PLACE_HALF_SEGMENT;
        } else {
            read = values.array() != null ? Values.IN_PLACE_ARRAY : Values.IN_PLACE_SEGMENT;
        }
        return new TilePath(scores, read, dp);
    }

    /** Whether the tile's queries are also kept transposed, for {@link TileMath#scoresByKey}. */
    boolean transposedQueries() {
        return scores == Scores.IN_PLACE_BY_KEY;
    }
}
