package dev.aule.cpu;

import dev.aule.AttentionOptions;
import dev.aule.Tensor;
import dev.aule.cpu.vector.BackwardRows;
import dev.aule.mask.AttentionMask;
import dev.aule.mask.BlockMask;
import dev.aule.mask.MaskMod;
import dev.aule.mask.ScoreMod;
import dev.aule.spi.BlockMaskTiles;

/**
 * The element-wise part of a call's score pipeline that the tile arithmetic does not do: the additive
 * bias, the ScoreMod, the dense mask and the MaskMod, plus the BlockMask's verdict per tile. Kernels
 * apply it to a row's scores after softcap and ALiBi and before the row max, only inside the row's
 * causal/window interval (so masks and mods are only called with indices of the call). Null when a
 * call sets none of them, so plain attention runs the kernels unchanged.
 */
final class ScoreMasks {
    private final AttentionMask mask;
    private final Tensor bias;
    private final MaskMod maskMod;
    private final BlockMask blockMask;
    private final ScoreMod scoreMod;
    private final ScoreMod.Derivative scoreModDerivative;

    private ScoreMasks(AttentionOptions options) {
        this.mask = options.mask();
        this.bias = options.bias();
        this.maskMod = options.maskMod();
        this.blockMask = options.blockMask();
        this.scoreMod = options.scoreMod();
        this.scoreModDerivative = scoreMod == null ? null : scoreMod.derivative();
    }

    /** The call's masks and mods, or null when it has none. */
    static ScoreMasks of(AttentionOptions options) {
        return options.hasMasksOrScoreMods() ? new ScoreMasks(options) : null;
    }

    /**
     * What the BlockMask says of queries {@code [i0, i1]}, keys {@code [j0, j1]} and query heads
     * {@code [h0, h1]} of batch {@code b}: EMPTY (skip the tile: the MaskMod hides every pair), FULL (the
     * MaskMod shows every pair: not called) or PARTIAL (also when there is no BlockMask). The other masks
     * still apply inside a FULL tile.
     */
    BlockMask.Status tile(int b, int h0, int h1, int i0, int i1, int j0, int j1) {
        if (maskMod == null) {
            return BlockMask.Status.FULL;
        }
        if (blockMask == null) {
            return BlockMask.Status.PARTIAL;
        }
        return BlockMaskTiles.status(blockMask, b, h0, h1, i0, i1, j0, j1);
    }

    /**
     * Whether {@link #row} (or {@link #softmaxBackward}) does anything the plain tile arithmetic does not in a
     * tile of this status: not when only a MaskMod is set and the tile is FULL.
     */
    boolean changesRows(BlockMask.Status status) {
        return mask != null || bias != null || scoreMod != null || (maskMod != null && status != BlockMask.Status.FULL);
    }

    /**
     * The forward's hook on one row of scores: {@code s[off + j]} is the score (after softcap and ALiBi)
     * of query {@code i} against key {@code j0 + j}, for {@code j} in the row's visible interval
     * {@code [lo, hi]}. Adds the bias, applies the ScoreMod and sets hidden keys to {@code -inf}. With
     * {@code maskModFull} the MaskMod is known to show every key of the tile and is not called.
     */
    void row(float[] s, int off, int b, int h, int i, int j0, int lo, int hi, boolean maskModFull) {
        boolean askMod = maskMod != null && !maskModFull;
        for (int j = lo; j <= hi; j++) {
            int key = j0 + j;
            float x = s[off + j];
            if (bias != null) {
                x = addBias(x, b, h, i, key);
            }
            if (scoreMod != null && x != Float.NEGATIVE_INFINITY) { // a -inf bias masks; the mod never sees it
                x = scoreMod.apply(x, b, h, i, key);
            }
            if ((mask != null && !mask.get(b, h, i, key)) || (askMod && !maskMod.visible(b, h, i, key))) {
                x = Float.NEGATIVE_INFINITY;
            }
            s[off + j] = x;
        }
    }

    /**
     * The backward's softmax step over a transposed tile with masks or mods, replacing
     * {@link TileMath#softmaxBackward} (same layout and arguments; {@code t} is the lane count of a tile row,
     * {@code b} and {@code h} the batch and query head). Per pair, with {@code x} the scaled score:
     * {@code y = softcap(x) - slope |diag - key| + bias}, {@code z = mod(y)}; hidden pairs get {@code p = ds = 0},
     * others {@code p = exp(z - lse)} and {@code ds = p (dp - delta) softcap'(x) mod'(y)}.
     */
    void softmaxBackward(
            float[] s,
            float[] dp,
            int keys,
            int key0,
            int rowOff,
            int t,
            BackwardRows rows,
            int b,
            int h,
            boolean maskModFull) {
        float[] lse = rows.lse();
        float[] delta = rows.delta();
        int[] first = rows.first();
        int[] last = rows.last();
        float[] diag = rows.diag();
        float cap = rows.softcap();
        float slope = rows.slope();
        boolean askMod = maskMod != null && !maskModFull;
        for (int j = 0; j < keys; j++) {
            int key = key0 + j;
            for (int lane = 0, at = j * t; lane < t; lane++, at++) {
                int i = rowOff + lane;
                if (key < first[i]
                        || key > last[i]
                        || (mask != null && !mask.get(b, h, i, key))
                        || (askMod && !maskMod.visible(b, h, i, key))) {
                    s[at] = 0f;
                    dp[at] = 0f;
                    continue;
                }
                float x = s[at] * rows.scoreScale();
                float capSlope = 1f;
                if (cap > 0f) {
                    float tanh = (float) Math.tanh(x / cap);
                    x = cap * tanh;
                    capSlope = 1f - tanh * tanh;
                }
                x -= slope * Math.abs(diag[i] - key);
                if (bias != null) {
                    x = addBias(x, b, h, i, key);
                }
                if (scoreMod != null && x != Float.NEGATIVE_INFINITY) {
                    capSlope *= scoreModDerivative.at(x, b, h, i, key);
                    x = scoreMod.apply(x, b, h, i, key);
                }
                float p = x == Float.NEGATIVE_INFINITY ? 0f : (float) Math.exp(Math.min(x - lse[i], 0f));
                s[at] = p;
                dp[at] = p == 0f ? 0f : p * (dp[at] - delta[i]) * capSlope;
            }
        }
    }

    /**
     * {@code x + bias}, where a bias of {@code -inf} hides the key whatever its score: a NaN or {@code +inf}
     * score (a NaN or an infinity in the key, or an overflowing product) plus {@code -inf} must not give NaN.
     */
    private float addBias(float x, int b, int h, int i, int key) {
        float add = bias.get(bias.batch() == 1 ? 0 : b, bias.heads() == 1 ? 0 : h, i, key);
        return add == Float.NEGATIVE_INFINITY ? add : x + add;
    }
}
