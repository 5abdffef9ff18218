package dev.aule.cpu;

import dev.aule.mask.BlockMask;

/**
 * Every tile size and threshold of the CPU kernels (forward, decode, split-KV and backward), each with the
 * reason for its value. The kernels and their javadoc refer to these names rather than restating numbers.
 *
 * <p>Geometry in one place, with {@code L} the floats per vector (16 at 512 bits, 8 at 256, 4 at 128, 1 on
 * the scalar path):
 * <ul>
 *   <li>a key block is {@link #KEY_BLOCK_VECTORS} vectors wide ({@code 4 L} keys; {@link #SCALAR_KEY_TILE}
 *       on the scalar path);</li>
 *   <li>a forward query tile holds {@link #MIN_TILE_ROWS} to {@link #MAX_TILE_ROWS} rows, as many as keep the
 *       query tile and the output accumulator within {@link #TILE_BUDGET_BYTES} (256 rows up to D = 128, 128 at
 *       256, 64 at 512), halved while a sequence would have fewer than {@link #SEQUENCE_TILES} tiles;</li>
 *   <li>tiles of at most {@link #SHORT_TILE_MAX_ROWS} rows (decode) read F32 keys and values in place, and take
 *       their scores row by row up to {@link #BY_ROW_MAX_ROWS} rows;</li>
 *   <li>when a sequence has fewer than {@link #SPLIT_BELOW_TILES} tiles, each tile's key range is split into parts
 *       of at most {@link #SPLIT_KEYS} keys (flash-decoding), at most {@link #MAX_SPLITS} of them;</li>
 *   <li>the backward works on square tiles of one key block by as many query rows, in about
 *       {@link #BACKWARD_TARGET_TASKS} tasks, its dQ partial sums within {@link #DQ_PARTIALS_EXTRA_BYTES};</li>
 *   <li>every micro-kernel takes {@link #MICRO_ROWS} rows at a time, and {@link #BLOCK_MASK_BLOCK} divides every
 *       tile size.</li>
 * </ul>
 *
 * <p>Every decision that changes the order of a sum (tile rows, key splits) follows from one sequence's own
 * shape and these constants, never from the pool size or the rest of a batch ({@link ForwardPlan}), so results are
 * bitwise the same on any number of threads and in any batch.
 *
 * <p>This class is public only so that the SIMD kernels of {@code dev.aule.cpu.vector} can read it; neither
 * package is exported by the module.
 */
public final class TileConfig {
    /**
     * Vectors per key block row: the products then run as 4 query rows x 4 vectors = 16 accumulators, which with
     * 4 operand vectors and a broadcast fit the 32 registers of AVX-512 without spilling.
     */
    public static final int KEY_BLOCK_VECTORS = 4;

    /** Rows every micro-kernel takes at once: 4 rows amortise each loaded key or value vector over 4 FMAs. */
    public static final int MICRO_ROWS = 4;

    /** Keys per block on the scalar path (one lane): the block of 512-bit vectors, so tiles look the same. */
    public static final int SCALAR_KEY_TILE = 64;

    /**
     * Bytes of query tile plus output accumulator a forward tile aims at: a quarter of a 1 MiB L2, or half of
     * 512 KiB, so the whole tile set (about 400 KiB at D = 128 with the key, value and score blocks) stays in L2.
     */
    public static final int TILE_BUDGET_BYTES = 256 * 1024;

    /**
     * Most query rows a forward tile holds (D up to 128): every packed key block is reused by 64 passes of the
     * 4-row micro-kernels; 64-row tiles ran 20 to 30 % slower at D = 64 and 128.
     */
    public static final int MAX_TILE_ROWS = 256;

    /**
     * FLOPs below which a call runs on the caller's thread alone (about 20 to 40 microseconds of work on one core):
     * handing work to the pool's parked workers costs their wake-up, 20 to 100 microseconds, more than such a call's
     * work (a warmed B = 1, H = 8, Sq = Sk = 1, D = 64 forward took 22 to 130 microseconds on 2 threads and 5 to 10
     * inline). Results do not depend on the thread count, so this changes no bits.
     */
    public static final double INLINE_MAX_FLOPS = 2e6;

    /** Fewest query rows a forward tile holds (large head dims, or few heads to spread over the cores). */
    public static final int MIN_TILE_ROWS = 64;

    /**
     * Tiles a sequence aims for over its KV heads: while it has fewer, its tile rows are halved down to
     * {@link #MIN_TILE_ROWS}, so a short prefill with few heads still spreads over the cores of a workstation
     * (4 tiles per core of 4 cores; causal tiles differ in cost). Smaller tiles cost throughput (64-row tiles run
     * 20 to 30 % slower than 256-row ones), hence no more than that. A fixed number, not one from the pool size,
     * so that a sequence's tiles, and with them its bits, are the same on any thread count and machine load.
     */
    public static final int SEQUENCE_TILES = 16;

    /**
     * A sequence with fewer tiles than this (decode, short prefill) has each tile's key range split
     * (flash-decoding): 4 work items per core of 16 cores. Splits cost little ({@link #SPLIT_KEYS}), so the bar is
     * higher than {@link #SEQUENCE_TILES}'s; long prefills, whose partial states would be as large as their
     * output times the splits, are not split. Fixed for the same reason as {@link #SEQUENCE_TILES}.
     */
    public static final int SPLIT_BELOW_TILES = 64;

    /**
     * Most keys a part of a split key range holds: a fixed size, so decode splits follow the context length alone
     * (1 part up to 1024 keys, 8 at 8192) and long contexts still spread over the cores. Each part costs one
     * store and merge of its partial state ({@code dv} floats per row), under 1 % of its 1024 keys' work.
     */
    public static final int SPLIT_KEYS = 1024;

    /**
     * Most parts a tile's key range is split into: bounds the work items and partial states of the longest
     * contexts, whose parts then grow past {@link #SPLIT_KEYS} keys; at the longest legal key length (2^31 - 1) a
     * part still holds no more than 2^23 keys, so the running F32 sums of equal keys stay exact.
     */
    public static final int MAX_SPLITS = 256;

    /**
     * Most bytes the partial states ({@code o}, max and sum per row and part) of one split sequence take; fewer
     * parts are made for sequences with many rows per tile and wide values.
     */
    public static final long SPLIT_PARTIAL_BYTES = 16L << 20;

    /**
     * Tiles of at most this many rows (8 decode queries x a GQA group of 4) skip the key transpose and read F32
     * keys and values in place when the layout allows ({@link InPlaceRows}): for few rows the transpose would
     * cost more than the products.
     */
    public static final int SHORT_TILE_MAX_ROWS = 32;

    /**
     * Short tiles of at most this many rows take scores by row-major dot products (one horizontal sum per score,
     * cheap for few rows); longer ones with keys in place put the query rows along the vector lanes instead
     * ({@link TileMath#scoresByKey}).
     */
    public static final int BY_ROW_MAX_ROWS = 8;

    /**
     * Most bytes of keys a forward call transposes once for all its tiles (each KV head's whole key blocks, packed
     * by the first tile that needs them) instead of once per tile: as much again as an F32 key tensor of B = 1,
     * H = 32, S = 4096, D = 128. Above it every tile packs its own blocks, with the same bits. Also the most such
     * panels kept between calls for reuse.
     */
    public static final long PACKED_KEYS_MAX_BYTES = 64L << 20;

    /**
     * Key panels ({@code KT} keys each) a forward tile takes in one online-softmax step where the head dims are at most
     * {@link #WIDE_MAX_HEAD_DIM} and nothing but the softmax follows the product (no mask, softcap, ALiBi, dropout):
     * each row's max, lane reductions and output rescale then come once per 8 KT keys (512 at 512 bits) instead of
     * once per panel ({@code dev.aule.cpu.vector.WideBlocks}). At 12 heads of 32 and 512 tokens the attention call
     * took 2.8 to 3.0 ms with 8 panels, 3.0 to 3.1 with 4 and 3.1 to 3.2 without wide blocks.
     */
    public static final int WIDE_KEY_PANELS = 8;

    /**
     * Largest query and value head dim that takes wide key blocks: the per-block softmax work the wide blocks save is
     * a fixed cost per row and block, which weighs against the products' {@code 2 D} FMAs per score at small D (at
     * D = 32 it cost more than the score product) and little at D = 128.
     */
    public static final int WIDE_MAX_HEAD_DIM = 64;

    /** Main-phase tasks a backward call aims for: enough for the cores of a workstation with causal imbalance. */
    public static final int BACKWARD_TARGET_TASKS = 32;

    /**
     * Memory the backward's dQ partial sums beyond the first may take: each key chunk keeps its own so nothing
     * accumulates across threads; more chunks than fit are not made.
     */
    public static final long DQ_PARTIALS_EXTRA_BYTES = 256L << 20;

    /**
     * The BlockMask's block side: it divides every tile size here (key blocks of at least 4 vectors of 4 floats,
     * query tiles of 64 rows or more, backward tiles of one key block), so a tile covers whole mask blocks.
     */
    public static final int BLOCK_MASK_BLOCK = BlockMask.BLOCK;

    private TileConfig() {}
}
