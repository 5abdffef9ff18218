package dev.aule.serving;

import dev.aule.cpu.vector.Elementwise;

/**
 * Per-block key summaries of one sequence of a {@link PagedKvCache}: for each logical block and KV head, the
 * per-channel minimum and maximum of the keys stored there (Quest, Tang et al., ICML 2024). For a query q,
 * {@code sum_d max(q_d * min_d, q_d * max_d)} bounds from above the dot product of q with every key of the
 * block, so the blocks with the largest bounds are those that can hold the largest scores.
 *
 * <p>Maintainer invariants: the layout is channel-major, {@code [head][d][min | max][capacity]}, so the bound of
 * every block for one query is {@code headDim} passes of {@code score[blk] += q_d * row[blk]} over contiguous
 * rows (the row of the minima where {@code q_d < 0}, of the maxima otherwise), a loop the JIT vectorises; the
 * entries of block {@code blk < blocks} cover exactly the keys written to its slots so far (a block of a sequence
 * only grows, so a new key widens its bounds and never needs a rescan); entries at and past {@code blocks} are
 * unused. The summaries are of the keys as stored (after RoPE and the cache's rounding to its element type), so
 * the bound holds for what the kernel reads.
 */
final class KeySummaries {
    /** Blocks per tile of {@link #addBounds}: 4 query rows' scores of a tile take 8 KiB. */
    private static final int TILE = 512;
    /**
     * Whether the Vector API is there (the cpu backend's rule too): only then is {@link Elementwise}, which links
     * against it, ever loaded. Both paths add the same products in the same order.
     */
    private static final boolean SIMD =
            ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent();

    private final int kvHeads;
    private final int headDim;
    private float[] bounds;
    private int capacity;
    private int blocks;

    KeySummaries(int kvHeads, int headDim) {
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        this.capacity = 8;
        this.bounds = new float[Math.multiplyExact(rows(), capacity)];
    }

    private KeySummaries(KeySummaries other) {
        this.kvHeads = other.kvHeads;
        this.headDim = other.headDim;
        this.bounds = other.bounds.clone();
        this.capacity = other.capacity;
        this.blocks = other.blocks;
    }

    /** {@return an independent copy (a forked sequence shares its parent's blocks, so their summaries)} */
    KeySummaries copy() {
        return new KeySummaries(this);
    }

    /** {@return the logical blocks summarised} */
    int blocks() {
        return blocks;
    }

    /**
     * Widens the summary of (logical {@code block}, {@code head}) to include {@code key} (its first
     * {@code headDim} floats); {@code slot} 0 starts the block afresh. Blocks are summarised in order: {@code block}
     * is at most {@link #blocks()}.
     */
    void include(int block, int slot, int head, float[] key) {
        if (block >= blocks) {
            if (block >= capacity) {
                grow(block + 1);
            }
            blocks = block + 1;
        }
        for (int d = 0; d < headDim; d++) {
            int min = row(head, d, 0) + block;
            int max = min + capacity;
            float x = key[d];
            if (slot == 0) {
                bounds[min] = x;
                bounds[max] = x;
            } else {
                bounds[min] = Math.min(bounds[min], x);
                bounds[max] = Math.max(bounds[max], x);
            }
        }
    }

    /**
     * Adds to {@code scores[r * stride + blk]}, for every block {@code blk < blocks()} and each of the
     * {@code queries} query rows {@code r} of KV head {@code head} (row {@code r} is {@code headDim} floats of
     * {@code q} from {@code qOffset + r * headDim}), the bound of {@code q_r . k} over the keys of
     * {@code (blk, head)}.
     */
    void addBounds(int head, float[] q, int qOffset, int queries, float[] scores, int stride) {
        int n = blocks;
        // Tiles of TILE blocks: the query rows' scores of a tile stay in L1 while every channel adds to them, so
        // each summary row is read from memory once for the whole query group.
        for (int tile = 0; tile < n; tile += TILE) {
            int end = Math.min(n, tile + TILE);
            for (int d = 0; d < headDim; d++) {
                int mins = row(head, d, 0);
                for (int r = 0; r < queries; r++) {
                    float x = q[qOffset + r * headDim + d];
                    if (x == 0f) {
                        continue;
                    }
                    // max(x * min, x * max) is x * max for x > 0 and x * min for x < 0.
                    int from = mins + (x > 0 ? capacity : 0);
                    int to = r * stride;
                    if (SIMD) {
                        Elementwise.addScaled(scores, to + tile, bounds, from + tile, end - tile, x);
                    } else {
                        for (int blk = tile; blk < end; blk++) {
                            scores[to + blk] += x * bounds[from + blk];
                        }
                    }
                }
            }
        }
    }

    /** Bytes the summaries take. */
    long bytes() {
        return (long) bounds.length * Float.BYTES;
    }

    /** Rows of {@code capacity} floats: a minimum and a maximum per head and channel. */
    private int rows() {
        return Math.multiplyExact(Math.multiplyExact(kvHeads, headDim), 2);
    }

    private int row(int head, int d, int which) {
        return ((head * headDim + d) * 2 + which) * capacity;
    }

    private void grow(int needed) {
        int larger = (int) Math.min(Math.max((long) needed, 2L * capacity), Integer.MAX_VALUE / rows());
        if (larger < needed) {
            throw new IllegalStateException("key summaries of " + needed + " blocks pass the largest Java array");
        }
        float[] next = new float[rows() * larger];
        for (int r = 0; r < rows(); r++) {
            System.arraycopy(bounds, r * capacity, next, r * larger, blocks);
        }
        bounds = next;
        capacity = larger;
    }

    @Override
    public String toString() {
        return "KeySummaries[" + blocks + " blocks of " + kvHeads + " heads, " + headDim + " channels]";
    }
}
