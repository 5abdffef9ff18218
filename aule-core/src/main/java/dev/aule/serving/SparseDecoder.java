package dev.aule.serving;

import dev.aule.AttentionOptions;
import dev.aule.Tensor;

import java.util.Arrays;

/**
 * Query-aware sparse decode (Quest): which blocks each query head reads, and the one paged call that reads them.
 *
 * <p>The choice, per sequence and query head {@code h} (KV head {@code g = h / (Hq / Hkv)}): the
 * {@link SparseBudget#recentBlocks()} newest blocks, and among the others the {@link SparseBudget#topBlocks()}
 * whose summaries give the largest upper bound of {@code q_h . k} ({@link KeySummaries}); ties go to the older
 * block, so the choice is a function of the query and the cache alone. A sequence with no more blocks than the
 * budget reads all of them, which is exact attention.
 *
 * <p>The call: the query heads of one KV head share one pass over its keys (the GQA tile reads each key once for
 * the whole group), so each query head reads the blocks chosen for it and those its group's other heads chose: it
 * never loses a block, and a group whose heads agree reads little more than one head's budget. Each (sequence,
 * KV head) is a pseudo-sequence of its group's query rows and one KV head, whose block table lists the group's
 * blocks in position order. The cache's head-major pool {@code [numBlocks, Hkv, blockSize,
 * D]} is, read as {@code [Hkv * numBlocks, 1, blockSize, D]}, one block per (head, block) pair, so the table entry
 * of block {@code p} of KV head {@code g} is {@code g * numBlocks + p}: one ordinary, validated paged call reads
 * everything, on every backend with serving entry points. Only the last block read can be partial (the newest
 * block is always chosen and comes last in position order), so a pseudo-sequence's length is
 * {@code (blocks read - 1) * blockSize} plus the fill of the newest block.
 */
final class SparseDecoder {
    private SparseDecoder() {}

    /**
     * Sparse decode reads a subset of the keys at positions of its own, so options that depend on a key's position
     * relative to the query are refused; causal masking (the query is the newest position and sees every key),
     * softcap and the scale keep their meaning.
     */
    static void checkOptions(AttentionOptions options) {
        if (options.windowLeft() >= 0) {
            throw new IllegalArgumentException("options: sparse decode takes no left window (got "
                    + options.windowLeft() + "): the blocks it reads are chosen by score, not by distance");
        }
        if (options.hasAlibi()) {
            throw new IllegalArgumentException(
                    "options: sparse decode takes no ALiBi slopes (the chosen keys' distances are not kept)");
        }
        if (options.hasMasksOrScoreMods()) {
            throw new IllegalArgumentException("options: sparse decode takes no masks, biases, MaskMods, ScoreMods"
                    + " or block masks (their positions are the whole sequence's)");
        }
        if (options.hasSinks()) {
            // The call runs each KV head's query group as its own pseudo-sequence, whose heads are not the call's.
            throw new IllegalArgumentException(
                    "options: sparse decode takes no sink logits; use attention() for" + " them");
        }
        if (options.hasDropout()) {
            throw new IllegalArgumentException("options: sparse decode takes no dropout (it is an inference path)");
        }
    }

    /**
     * The logical blocks each query head reads, in position order: {@code result[h]} for query head {@code h} of
     * the query rows {@code q} ({@code queryHeads * headDim} floats, head-major).
     *
     * @param summaries the sequence's key summaries, covering its {@code blocks} logical blocks
     * @param blocks the sequence's logical blocks, at least 1
     */
    static int[][] choose(
            KeySummaries summaries,
            int blocks,
            float[] q,
            int queryHeads,
            int kvHeads,
            int headDim,
            SparseBudget budget) {
        int[][] chosen = new int[queryHeads][];
        if (budget.blocks() >= blocks) {
            int[] all = new int[blocks];
            Arrays.setAll(all, i -> i);
            Arrays.fill(chosen, all);
            return chosen;
        }
        int recent = budget.recentBlocks();
        int older = blocks - recent;
        int top = budget.topBlocks(); // < older: the budget is smaller than the sequence
        int group = queryHeads / kvHeads;
        float[] scores = new float[group * blocks];
        int[] ids = new int[older];
        for (int g = 0; g < kvHeads; g++) {
            Arrays.fill(scores, 0f);
            summaries.addBounds(g, q, g * group * headDim, group, scores, blocks);
            for (int r = 0; r < group; r++) {
                for (int i = 0; i < older; i++) {
                    ids[i] = i;
                }
                TopK.largestToFront(ids, older, top, scores, r * blocks);
                int[] mine = new int[top + recent];
                System.arraycopy(ids, 0, mine, 0, top);
                Arrays.sort(mine, 0, top);
                for (int i = 0; i < recent; i++) {
                    mine[top + i] = older + i;
                }
                chosen[g * group + r] = mine;
            }
        }
        return chosen;
    }

    /**
     * The pool as {@code [Hkv * numBlocks, 1, blockSize, D]}: block {@code g * numBlocks + p} is block {@code p} of
     * KV head {@code g}. Needs the head-major layout {@link PagedKvCache} keeps.
     */
    static Tensor perHeadBlocks(Tensor pool) {
        long[] strides = pool.strides();
        long blockStride = strides[0];
        if (strides[1] != pool.batch() * blockStride) {
            throw new IllegalStateException("pool is not head-major: strides " + Arrays.toString(strides));
        }
        long[] shape = {(long) pool.heads() * pool.batch(), 1, pool.seqLen(), pool.headDim()};
        return Tensor.of(pool.memory(), pool.dtype(), shape, new long[] {
            blockStride, blockStride * pool.batch(), strides[2], strides[3]
        });
    }

    /** Query rows {@code [B, Hq, 1, D]} as float, batch entry {@code b} at {@code rows[b]} head-major. */
    static float[][] queryRows(Tensor q) {
        float[][] rows = new float[q.batch()][q.heads() * q.headDim()];
        for (int b = 0; b < q.batch(); b++) {
            for (int h = 0; h < q.heads(); h++) {
                q.readRow(b, h, 0, rows[b], h * q.headDim());
            }
        }
        return rows;
    }

    /**
     * The query rows as {@code [B * Hkv, group, 1, D]}: pseudo-sequence {@code b * Hkv + g} holds the query heads
     * of KV head {@code g} of batch entry {@code b}.
     */
    static Tensor pseudoQueries(Tensor q, float[][] rows, int kvHeads) {
        int group = q.heads() / kvHeads;
        Tensor grouped = Tensor.allocate(q.dtype(), q.batch() * kvHeads, group, 1, q.headDim());
        for (int b = 0; b < q.batch(); b++) {
            for (int h = 0; h < q.heads(); h++) {
                grouped.writeRow(b * kvHeads + h / group, h % group, 0, rows[b], h * q.headDim());
            }
        }
        return grouped;
    }

    /** The sorted union of {@code chosen[from .. from + count - 1]} (each sorted). */
    static int[] union(int[][] chosen, int from, int count) {
        int total = 0;
        for (int r = 0; r < count; r++) {
            total += chosen[from + r].length;
        }
        int[] all = new int[total];
        int at = 0;
        for (int r = 0; r < count; r++) {
            System.arraycopy(chosen[from + r], 0, all, at, chosen[from + r].length);
            at += chosen[from + r].length;
        }
        Arrays.sort(all);
        int unique = 0;
        for (int i = 0; i < total; i++) {
            if (unique == 0 || all[i] != all[unique - 1]) {
                all[unique++] = all[i];
            }
        }
        return Arrays.copyOf(all, unique);
    }
}
