package dev.aule;

import dev.aule.mask.AttentionMask;
import dev.aule.mask.BlockMask;
import dev.aule.mask.MaskMod;
import dev.aule.mask.ScoreMod;
import dev.aule.spi.Capabilities;

import java.util.Arrays;
import java.util.Objects;
import java.util.Optional;

/**
 * What to compute beyond plain softmax attention: causal masking (aligned bottom-right), a local
 * window, a custom scale, logit soft-capping, ALiBi and dropout. Immutable; build with {@link #builder()}.
 *
 * <p>For query row {@code i} and key {@code j}, with {@code offset = Sk - Sq}, key {@code j} is
 * visible when {@code i + offset - left <= j <= i + offset + right} ({@code -1} = unbounded);
 * {@code causal} sets {@code right = 0}.
 *
 * <p>Masks and programmable scores: a dense boolean {@link #mask()}, an additive {@link #bias()}, a
 * {@link #maskMod()} (optionally with its {@link #blockMask()}) and a {@link #scoreMod()}. The score of
 * a pair is {@code s = scale q.k}, then softcap, then ALiBi, then {@code + bias}, then the ScoreMod;
 * the pair is visible when causal/window, the dense mask and the MaskMod all allow it (their
 * intersection) and the final score is not {@code -inf}.
 */
public final class AttentionOptions {
    private static final AttentionOptions DEFAULTS = new Builder().build();

    private final boolean causal;
    private final float scale; // NaN: 1/sqrt(headDim)
    private final int windowLeft;
    private final int windowRight;
    private final float softcap;
    private final float[] alibiSlopes; // [Hq], or [B * Hq] row-major when alibiBatches > 0
    private final int alibiBatches; // 0: one slope per query head for every batch entry
    private final AttentionMask mask;
    private final Tensor bias;
    private final MaskMod maskMod;
    private final BlockMask blockMask;
    private final ScoreMod scoreMod;
    private final float dropout; // 0: off
    private final long dropoutSeed;
    private final float[] sinks; // [Hq] sink logits, or null
    private final int numSplits; // 0: the backend's own plan

    private AttentionOptions(Builder b) {
        this.causal = b.causal;
        this.scale = b.scale;
        this.windowLeft = b.windowLeft;
        this.windowRight = b.windowRight;
        this.softcap = b.softcap;
        this.alibiSlopes = b.alibiSlopes;
        this.alibiBatches = b.alibiBatches;
        this.mask = b.mask;
        this.bias = b.bias;
        this.maskMod = b.maskMod;
        this.blockMask = b.blockMask;
        this.scoreMod = b.scoreMod;
        this.dropout = b.dropout;
        this.dropoutSeed = b.dropoutSeed;
        this.sinks = b.sinks;
        this.numSplits = b.numSplits;
    }

    /** {@return the default options: non-causal, scale {@code 1/sqrt(headDim)}, no window, no softcap, no ALiBi} */
    public static AttentionOptions defaults() {
        return DEFAULTS;
    }

    /** {@return a builder starting from the defaults} */
    public static Builder builder() {
        return new Builder();
    }

    /** {@return a builder starting from these options} */
    public Builder toBuilder() {
        Builder b = new Builder();
        b.causal = causal;
        b.scale = scale;
        b.windowLeft = windowLeft;
        b.windowRight = windowRight;
        b.softcap = softcap;
        b.alibiSlopes = alibiSlopes;
        b.alibiBatches = alibiBatches;
        b.mask = mask;
        b.bias = bias;
        b.maskMod = maskMod;
        b.blockMask = blockMask;
        b.scoreMod = scoreMod;
        b.dropout = dropout;
        b.dropoutSeed = dropoutSeed;
        b.sinks = sinks;
        b.numSplits = numSplits;
        return b;
    }

    /** {@return whether causal masking (aligned bottom-right) is on} */
    public boolean causal() {
        return causal;
    }

    /** {@return the scale set explicitly, or empty for the default {@code 1/sqrt(headDim)}} */
    public Optional<Float> explicitScale() {
        return Float.isNaN(scale) ? Optional.empty() : Optional.of(scale);
    }

    /**
     * The scale applied to {@code q . k} for this head dim.
     *
     * @param headDim elements {@code D} per query and key row
     * @return the explicit scale, or {@code 1/sqrt(headDim)}
     */
    public float scale(int headDim) {
        return Float.isNaN(scale) ? (float) (1.0 / Math.sqrt(headDim)) : scale;
    }

    /** {@return the keys visible to the left of the diagonal; -1 = unbounded} */
    public int windowLeft() {
        return windowLeft;
    }

    /**
     * Keys visible to the right of the diagonal as set; -1 = unbounded. See {@link #effectiveWindowRight()}.
     *
     * @return the right bound as set, -1 for unbounded
     */
    public int windowRight() {
        return windowRight;
    }

    /** {@return the right bound in force: 0 when causal, else {@link #windowRight()}} */
    public int effectiveWindowRight() {
        return causal ? 0 : windowRight;
    }

    /**
     * Soft-capping constant {@code c} ({@code s = c tanh(s / c)}); 0 = off.
     *
     * @return the soft-capping constant, 0 when off
     */
    public float softcap() {
        return softcap;
    }

    /** {@return true when ALiBi slopes are set} */
    public boolean hasAlibi() {
        return alibiSlopes != null;
    }

    /**
     * The ALiBi slope of each query head (a copy), or null: without ALiBi, and when the slopes are per batch entry
     * ({@link #alibiSlopesPerBatch()}).
     *
     * @return the slopes of the query heads, or null
     */
    public float[] alibiSlopes() {
        return alibiSlopes == null || alibiBatches > 0 ? null : alibiSlopes.clone();
    }

    /**
     * Batch entries of per-batch ALiBi slopes ({@link Builder#alibiSlopesPerBatch(float[][])}); 0 when the slopes are per
     * query head only, or there are none.
     *
     * @return the number of batch entries the slopes are given for, or 0
     */
    public int alibiBatches() {
        return alibiBatches;
    }

    /** {@return the per-batch ALiBi slopes {@code [B][Hq]} (a copy), or null when they are not per batch entry} */
    public float[][] alibiSlopesPerBatch() {
        if (alibiBatches == 0) {
            return null;
        }
        int heads = alibiSlopes.length / alibiBatches;
        float[][] slopes = new float[alibiBatches][];
        for (int b = 0; b < alibiBatches; b++) {
            slopes[b] = Arrays.copyOfRange(alibiSlopes, b * heads, (b + 1) * heads);
        }
        return slopes;
    }

    /** {@return the query heads the ALiBi slopes are given for (in each batch entry), or 0 without ALiBi} */
    public int alibiHeads() {
        return alibiSlopes == null ? 0 : alibiSlopes.length / Math.max(1, alibiBatches);
    }

    /**
     * ALiBi slope of one query head; 0 without ALiBi. With per-batch slopes, batch entry 0's.
     *
     * @param queryHead the query head, {@code 0 <= queryHead < Hq}
     * @return its slope, or 0 without ALiBi
     */
    public float alibiSlope(int queryHead) {
        return alibiSlope(0, queryHead);
    }

    /**
     * ALiBi slope of one query head of one batch entry (of a packed variable-length call: one sequence); 0 without
     * ALiBi. Per-head slopes are the same for every batch entry.
     *
     * @param batch the batch entry, {@code 0 <= batch < B}
     * @param queryHead the query head, {@code 0 <= queryHead < Hq}
     * @return its slope, or 0 without ALiBi
     */
    public float alibiSlope(int batch, int queryHead) {
        if (alibiSlopes == null) {
            return 0f;
        }
        return alibiBatches == 0
                ? alibiSlopes[queryHead]
                : alibiSlopes[batch * (alibiSlopes.length / alibiBatches) + queryHead];
    }

    /** {@return the dense boolean mask ({@code true} = attend), or null} */
    public AttentionMask mask() {
        return mask;
    }

    /** {@return the additive bias {@code [B or 1, Hq or 1, Sq, Sk]} (a tensor whose head dim is Sk), or null} */
    public Tensor bias() {
        return bias;
    }

    /** {@return the programmable mask, or null; set directly or through {@link #blockMask()}} */
    public MaskMod maskMod() {
        return maskMod;
    }

    /** {@return the block sparsity of {@link #maskMod()}, or null when the MaskMod was set without one} */
    public BlockMask blockMask() {
        return blockMask;
    }

    /** {@return the programmable score, or null} */
    public ScoreMod scoreMod() {
        return scoreMod;
    }

    /**
     * Dropout probability {@code p} of the attention probabilities (FlashAttention's {@code dropout_p}); 0 = off.
     *
     * @return the probability, in {@code [0, 1)}
     */
    public float dropout() {
        return dropout;
    }

    /** {@return whether dropout is on ({@code dropout() > 0})} */
    public boolean hasDropout() {
        return dropout > 0f;
    }

    /** {@return the seed of the dropout mask (0 when dropout is off)} */
    public long dropoutSeed() {
        return dropoutSeed;
    }

    /** {@return whether sink logits are set ({@link Builder#sinks(float[])})} */
    public boolean hasSinks() {
        return sinks != null;
    }

    /** {@return the sink logit of each query head (a copy), or null without sinks} */
    public float[] sinks() {
        return sinks == null ? null : sinks.clone();
    }

    /**
     * The sink logit of one query head: the extra softmax term {@code exp(sink)} of its rows.
     *
     * @param queryHead the query head, {@code 0 <= queryHead < Hq}
     * @return its sink logit, or {@code -inf} (a term of 0) without sinks
     */
    public float sink(int queryHead) {
        return sinks == null ? Float.NEGATIVE_INFINITY : sinks[queryHead];
    }

    /**
     * Parts each tile's key range is cut into (FlashAttention's {@code num_splits}): 0 lets the backend plan it (the
     * default), {@code n >= 1} asks for {@code min(n, keys, MAX_SPLITS)} parts, where {@code keys} is the most keys
     * one query row of the sequence sees (at least 1) and {@code MAX_SPLITS} is the backend's cap (256 on cpu); 1
     * turns key splitting off. See {@link Builder#numSplits}.
     *
     * @return the requested parts, 0 for automatic
     */
    public int numSplits() {
        return numSplits;
    }

    /**
     * Whether any of the dense mask, bias, MaskMod or ScoreMod is set (a backend must support them: {@link
     *     Capabilities#masks()}).
     *
     * @return whether any of them is set
     */
    public boolean hasMasksOrScoreMods() {
        return mask != null || bias != null || maskMod != null || scoreMod != null;
    }

    @Override
    public String toString() {
        StringBuilder s = new StringBuilder("AttentionOptions[");
        s.append(causal ? "causal" : "non-causal");
        s.append(", scale ").append(Float.isNaN(scale) ? "1/sqrt(D)" : Float.toString(scale));
        if (windowLeft >= 0 || windowRight >= 0) {
            s.append(", window (")
                    .append(windowLeft)
                    .append(", ")
                    .append(windowRight)
                    .append(')');
        }
        if (softcap > 0) {
            s.append(", softcap ").append(softcap);
        }
        if (alibiSlopes != null && alibiBatches > 0) {
            s.append(", alibi ")
                    .append(alibiBatches)
                    .append(" x ")
                    .append(alibiHeads())
                    .append(" slopes");
        } else if (alibiSlopes != null) {
            s.append(", alibi ").append(alibiSlopes.length).append(" slopes");
        }
        if (mask != null) {
            s.append(", mask ").append(mask.shapeString());
        }
        if (bias != null) {
            s.append(", bias ").append(bias.dtype()).append(' ').append(bias.shapeString());
        }
        if (blockMask != null) {
            s.append(", ").append(blockMask);
        } else if (maskMod != null) {
            s.append(", maskMod");
        }
        if (scoreMod != null) {
            s.append(scoreMod.derivative() == null ? ", scoreMod" : ", scoreMod with derivative");
        }
        if (dropout > 0f) {
            s.append(", dropout ").append(dropout).append(" seed ").append(dropoutSeed);
        }
        if (sinks != null) {
            s.append(", sinks ").append(sinks.length);
        }
        if (numSplits > 0) {
            s.append(", numSplits ").append(numSplits);
        }
        return s.append(']').toString();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof AttentionOptions that
                && causal == that.causal
                && Float.compare(scale, that.scale) == 0
                && windowLeft == that.windowLeft
                && windowRight == that.windowRight
                && Float.compare(softcap, that.softcap) == 0
                && Arrays.equals(alibiSlopes, that.alibiSlopes)
                && alibiBatches == that.alibiBatches
                && mask == that.mask
                && bias == that.bias
                && maskMod == that.maskMod
                && blockMask == that.blockMask
                && scoreMod == that.scoreMod
                && Float.compare(dropout, that.dropout) == 0
                && dropoutSeed == that.dropoutSeed
                && Arrays.equals(sinks, that.sinks)
                && numSplits == that.numSplits;
    }

    /** Masks, biases and mods compare by identity. */
    @Override
    public int hashCode() {
        return Objects.hash(
                causal,
                scale,
                windowLeft,
                windowRight,
                softcap,
                Arrays.hashCode(alibiSlopes),
                alibiBatches,
                System.identityHashCode(mask),
                System.identityHashCode(bias),
                System.identityHashCode(maskMod),
                System.identityHashCode(blockMask),
                System.identityHashCode(scoreMod),
                dropout,
                dropoutSeed,
                Arrays.hashCode(sinks),
                numSplits);
    }

    /** Builder; each setter checks its argument at once. */
    public static final class Builder {
        private boolean causal;
        private float scale = Float.NaN;
        private int windowLeft = -1;
        private int windowRight = -1;
        private float softcap;
        private float[] alibiSlopes;
        private int alibiBatches;
        private AttentionMask mask;
        private Tensor bias;
        private MaskMod maskMod;
        private BlockMask blockMask;
        private ScoreMod scoreMod;
        private float dropout;
        private long dropoutSeed;
        private float[] sinks;
        private int numSplits;

        private Builder() {}

        /**
         * Causal masking aligned bottom-right: row {@code i} sees keys {@code j <= i + Sk - Sq}.
         *
         * @param causal true for causal masking
         * @return this builder
         */
        public Builder causal(boolean causal) {
            this.causal = causal;
            return this;
        }

        /**
         * Multiplier of {@code q . k}; any finite value.
         *
         * @param scale the multiplier, finite
         * @return this builder
         */
        public Builder scale(float scale) {
            if (!Float.isFinite(scale)) {
                throw new IllegalArgumentException("scale: must be finite, got " + scale);
            }
            this.scale = scale;
            return this;
        }

        /**
         * Local window: keys at most {@code left} before and {@code right} after the diagonal; -1 = unbounded.
         *
         * @param left keys visible before the diagonal, at least -1
         * @param right keys visible after the diagonal, at least -1
         * @return this builder
         */
        public Builder window(int left, int right) {
            if (left < -1 || right < -1) {
                throw new IllegalArgumentException(
                        "window: left and right must be >= -1 (-1 = unbounded), got (" + left + ", " + right + ")");
            }
            this.windowLeft = left;
            this.windowRight = right;
            return this;
        }

        /**
         * Logit soft-capping {@code s = c tanh(s / c)}; {@code c > 0}, or 0 to turn it off.
         *
         * @param softcap the constant {@code c}, finite and above 0, or 0
         * @return this builder
         */
        public Builder softcap(float softcap) {
            if (!Float.isFinite(softcap) || softcap < 0) {
                throw new IllegalArgumentException("softcap: must be finite and >= 0 (0 = off), got " + softcap);
            }
            this.softcap = softcap;
            return this;
        }

        /**
         * ALiBi: one finite slope per query head ({@code s += -m_h |i + offset - j|}), FlashAttention's
         * {@code alibi_slopes} of shape {@code (nheads)}; null to turn it off. Replaces per-batch slopes.
         *
         * @param perQueryHead the slopes, one per query head (copied), or null
         * @return this builder
         */
        public Builder alibiSlopes(float[] perQueryHead) {
            this.alibiBatches = 0;
            if (perQueryHead == null) {
                this.alibiSlopes = null;
                return this;
            }
            if (perQueryHead.length == 0) {
                throw new IllegalArgumentException(
                        "alibiSlopes: must hold one slope per query head, got an empty array");
            }
            for (int h = 0; h < perQueryHead.length; h++) {
                if (!Float.isFinite(perQueryHead[h])) {
                    throw new IllegalArgumentException(
                            "alibiSlopes: slope " + h + " must be finite, got " + perQueryHead[h]);
                }
            }
            this.alibiSlopes = perQueryHead.clone();
            return this;
        }

        /**
         * ALiBi with one finite slope per batch entry and query head ({@code s += -m_bh |i + offset - j|}),
         * FlashAttention's {@code alibi_slopes} of shape {@code (batch, nheads)}: {@code perBatchAndQueryHead[b][h]};
         * null to turn it off. Replaces per-head slopes. A call must have {@code B} batch entries and {@code Hq} query
         * heads (a packed variable-length call: {@code B} sequences, the batch index being the sequence's); on
         * backends with {@link Capabilities#alibiPerBatch()}.
         *
         * @param perBatchAndQueryHead {@code [B][Hq]} slopes, at least one row, all rows of one length of at least 1
         *     (copied), or null
         * @return this builder
         */
        public Builder alibiSlopesPerBatch(float[][] perBatchAndQueryHead) {
            if (perBatchAndQueryHead == null) {
                this.alibiSlopes = null;
                this.alibiBatches = 0;
                return this;
            }
            if (perBatchAndQueryHead.length == 0) {
                throw new IllegalArgumentException(
                        "alibiSlopesPerBatch: must hold one row of slopes per batch entry, got an empty array");
            }
            int heads = perBatchAndQueryHead[0] == null ? 0 : perBatchAndQueryHead[0].length;
            float[] flat = new float[Math.multiplyExact(perBatchAndQueryHead.length, Math.max(heads, 1))];
            for (int b = 0; b < perBatchAndQueryHead.length; b++) {
                float[] row = perBatchAndQueryHead[b];
                if (row == null || row.length == 0 || row.length != heads) {
                    throw new IllegalArgumentException(
                            "alibiSlopesPerBatch: row " + b + " must hold one slope per query head, " + heads
                                    + " as row 0 (at least 1), got " + (row == null ? "null" : row.length + " slopes"));
                }
                for (int h = 0; h < heads; h++) {
                    if (!Float.isFinite(row[h])) {
                        throw new IllegalArgumentException(
                                "alibiSlopesPerBatch: slope [" + b + "][" + h + "] must be finite, got " + row[h]);
                    }
                    flat[b * heads + h] = row[h];
                }
            }
            this.alibiSlopes = flat;
            this.alibiBatches = perBatchAndQueryHead.length;
            return this;
        }

        /**
         * Dense boolean mask {@code [B or 1, Hq or 1, Sq, Sk]}, {@code true} = attend; intersected with
         * causal, window and MaskMod. Null to turn it off. Its shape is checked against each call.
         *
         * @param mask the mask, or null
         * @return this builder
         */
        public Builder mask(AttentionMask mask) {
            this.mask = mask;
            return this;
        }

        /**
         * Additive bias {@code [B or 1, Hq or 1, Sq, Sk]} as a tensor of any dtype and layout (its head dim
         * is Sk; zero strides broadcast too), added after softcap and ALiBi. {@code -inf} masks the pair.
         * A constant for the backward (no gradient). Null to turn it off; checked against each call.
         *
         * @param bias the bias, or null
         * @return this builder
         */
        public Builder bias(Tensor bias) {
            this.bias = bias;
            return this;
        }

        /**
         * A programmable mask evaluated at every pair the other masks leave visible; clears any block mask. Null to
         *     turn it off.
         *
         * @param maskMod the mask, or null
         * @return this builder
         */
        public Builder maskMod(MaskMod maskMod) {
            this.maskMod = maskMod;
            this.blockMask = null;
            return this;
        }

        /**
         * A programmable mask with its precomputed block sparsity (sets {@link #maskMod} to its MaskMod). Null to turn
         *     it off.
         *
         * @param blockMask the mask with its block sparsity, or null
         * @return this builder
         */
        public Builder blockMask(BlockMask blockMask) {
            this.blockMask = blockMask;
            this.maskMod = blockMask == null ? null : blockMask.maskMod();
            return this;
        }

        /**
         * A programmable score applied after the bias and before masking. Null to turn it off.
         *
         * @param scoreMod the score, or null
         * @return this builder
         */
        public Builder scoreMod(ScoreMod scoreMod) {
            this.scoreMod = scoreMod;
            return this;
        }

        /**
         * Dropout on the attention probabilities, as FlashAttention's {@code dropout_p}: {@code out = (softmax(s) *
         * keep / (1 - p)) v}, each pair kept with probability {@code 1 - p}; the LSE is that of the softmax before
         * dropout, and the backward draws the same mask. The keep bit of each (batch, query head, query row, key)
         * is a pure function of {@code seed} and those indices ({@link dev.aule.spi.Dropout}), the same on every
         * backend that supports dropout ({@link Capabilities#dropout()}) and for any tiling or thread count. For
         * a packed variable-length call the batch index is the sequence's. {@code p = 0} turns it off.
         *
         * @param p the probability a pair is dropped, in {@code [0, 1)}
         * @param seed the mask's seed, any value
         * @return this builder
         */
        public Builder dropout(float p, long seed) {
            if (!(p >= 0f && p < 1f)) {
                throw new IllegalArgumentException("dropout: p must be in [0, 1) (0 = off), got " + p);
            }
            this.dropout = p;
            this.dropoutSeed = p == 0f ? 0L : seed;
            return this;
        }

        /**
         * Attention sinks as learnable logits (gpt-oss's {@code sinks}; the "attention sinks" of FlashInfer and vLLM):
         * one finite logit per query head, an extra softmax term with no value. Row {@code i} of head {@code h} is
         * {@code out_i = sum_j exp(s_ij) v_j / (sum_j exp(s_ij) + exp(sink_h))} over its visible keys, and its LSE
         * is {@code log(sum_j exp(s_ij) + exp(sink_h))}, the sink term included. A row that sees no key is 0 with
         * {@code lse = sink_h} (the sink takes all the weight). Dropout, when on, drops key probabilities only. The
         * backward's q, k and v gradients follow from that LSE unchanged; the sinks' own gradient is
         * {@link dev.aule.Attention#sinkGradients}. Needs {@link Capabilities#sinks()}. Null to turn it off.
         *
         * @param perQueryHead one finite logit per query head (copied), or null
         * @return this builder
         */
        public Builder sinks(float[] perQueryHead) {
            if (perQueryHead == null) {
                this.sinks = null;
                return this;
            }
            if (perQueryHead.length == 0) {
                throw new IllegalArgumentException("sinks: must hold one logit per query head, got an empty array");
            }
            float[] copy = perQueryHead.clone();
            for (int h = 0; h < copy.length; h++) {
                if (!Float.isFinite(copy[h])) {
                    throw new IllegalArgumentException("sinks: logit " + h + " must be finite, got " + copy[h]);
                }
            }
            this.sinks = copy;
            return this;
        }

        /**
         * How many parts each tile's key range is cut into (FlashAttention's {@code num_splits}), for benchmarks and
         * for results that must not change with the backend's planning: 0 (the default) lets the backend decide from
         * the sequence's shape; {@code n >= 1} cuts it into exactly {@code min(n, keys, MAX_SPLITS)} parts, with
         * {@code keys} the most keys one query row of the sequence sees (at least 1) and {@code MAX_SPLITS} the
         * backend's cap (256 on cpu; also no more parts than keep one sequence's partial outputs within 256 MiB,
         * which only long prefill reaches); 1 turns splitting off. Empty parts (more parts than key blocks) are merged as
         * empty. The result is exact either way and, on cpu, a function of this option and the sequence's own shape
         * only: the same in any batch and on any number of threads. Each part keeps a partial output per query row
         * ({@code Dv + 2} floats), so large {@code n} on long prefill costs memory. The reference backend ignores it
         * (it does not tile); the Vulkan backend ignores it (it has no key-split path).
         *
         * @param n parts per key range, {@code >= 0}; 0 for automatic
         * @return this builder
         */
        public Builder numSplits(int n) {
            if (n < 0) {
                throw new IllegalArgumentException("numSplits: must be >= 0 (0 = automatic), got " + n);
            }
            this.numSplits = n;
            return this;
        }

        /** {@return the options set so far} */
        public AttentionOptions build() {
            return new AttentionOptions(this);
        }
    }
}
