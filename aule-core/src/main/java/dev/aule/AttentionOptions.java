package dev.aule;

import java.util.Arrays;
import java.util.Objects;
import java.util.Optional;

/**
 * What to compute beyond plain softmax attention: causal masking (aligned bottom-right), a local
 * window, a custom scale, logit soft-capping and ALiBi. Immutable; build with {@link #builder()}.
 *
 * <p>For query row {@code i} and key {@code j}, with {@code offset = Sk - Sq}, key {@code j} is
 * visible when {@code i + offset - left <= j <= i + offset + right} ({@code -1} = unbounded);
 * {@code causal} sets {@code right = 0}.
 */
public final class AttentionOptions {
    private static final AttentionOptions DEFAULTS = new Builder().build();

    private final boolean causal;
    private final float scale; // NaN: 1/sqrt(headDim)
    private final int windowLeft;
    private final int windowRight;
    private final float softcap;
    private final float[] alibiSlopes;

    private AttentionOptions(Builder b) {
        this.causal = b.causal;
        this.scale = b.scale;
        this.windowLeft = b.windowLeft;
        this.windowRight = b.windowRight;
        this.softcap = b.softcap;
        this.alibiSlopes = b.alibiSlopes;
    }

    /** Non-causal, scale {@code 1/sqrt(headDim)}, no window, no softcap, no ALiBi. */
    public static AttentionOptions defaults() {
        return DEFAULTS;
    }

    public static Builder builder() {
        return new Builder();
    }

    /** A builder starting from these options. */
    public Builder toBuilder() {
        Builder b = new Builder();
        b.causal = causal;
        b.scale = scale;
        b.windowLeft = windowLeft;
        b.windowRight = windowRight;
        b.softcap = softcap;
        b.alibiSlopes = alibiSlopes;
        return b;
    }

    public boolean causal() {
        return causal;
    }

    /** The scale set explicitly, or empty for the default {@code 1/sqrt(headDim)}. */
    public Optional<Float> explicitScale() {
        return Float.isNaN(scale) ? Optional.empty() : Optional.of(scale);
    }

    /** The scale applied to {@code q . k} for this head dim. */
    public float scale(int headDim) {
        return Float.isNaN(scale) ? (float) (1.0 / Math.sqrt(headDim)) : scale;
    }

    /** Keys visible to the left of the diagonal; -1 = unbounded. */
    public int windowLeft() {
        return windowLeft;
    }

    /** Keys visible to the right of the diagonal as set; -1 = unbounded. See {@link #effectiveWindowRight()}. */
    public int windowRight() {
        return windowRight;
    }

    /** The right bound in force: 0 when causal, else {@link #windowRight()}. */
    public int effectiveWindowRight() {
        return causal ? 0 : windowRight;
    }

    /** Soft-capping constant {@code c} ({@code s = c tanh(s / c)}); 0 = off. */
    public float softcap() {
        return softcap;
    }

    /** True when ALiBi slopes are set. */
    public boolean hasAlibi() {
        return alibiSlopes != null;
    }

    /** ALiBi slope per query head (a copy), or null. */
    public float[] alibiSlopes() {
        return alibiSlopes == null ? null : alibiSlopes.clone();
    }

    /** ALiBi slope of one query head; 0 without ALiBi. */
    public float alibiSlope(int queryHead) {
        return alibiSlopes == null ? 0f : alibiSlopes[queryHead];
    }

    int alibiSlopeCount() {
        return alibiSlopes == null ? 0 : alibiSlopes.length;
    }

    @Override
    public String toString() {
        StringBuilder s = new StringBuilder("AttentionOptions[");
        s.append(causal ? "causal" : "non-causal");
        s.append(", scale ").append(Float.isNaN(scale) ? "1/sqrt(D)" : Float.toString(scale));
        if (windowLeft >= 0 || windowRight >= 0) {
            s.append(", window (").append(windowLeft).append(", ").append(windowRight).append(')');
        }
        if (softcap > 0) {
            s.append(", softcap ").append(softcap);
        }
        if (alibiSlopes != null) {
            s.append(", alibi ").append(alibiSlopes.length).append(" slopes");
        }
        return s.append(']').toString();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof AttentionOptions that && causal == that.causal
                && Float.compare(scale, that.scale) == 0 && windowLeft == that.windowLeft
                && windowRight == that.windowRight && Float.compare(softcap, that.softcap) == 0
                && Arrays.equals(alibiSlopes, that.alibiSlopes);
    }

    @Override
    public int hashCode() {
        return Objects.hash(causal, scale, windowLeft, windowRight, softcap, Arrays.hashCode(alibiSlopes));
    }

    /** Builder; each setter checks its argument at once. */
    public static final class Builder {
        private boolean causal;
        private float scale = Float.NaN;
        private int windowLeft = -1;
        private int windowRight = -1;
        private float softcap;
        private float[] alibiSlopes;

        private Builder() {
        }

        /** Causal masking aligned bottom-right: row {@code i} sees keys {@code j <= i + Sk - Sq}. */
        public Builder causal(boolean causal) {
            this.causal = causal;
            return this;
        }

        /** Multiplier of {@code q . k}; any finite value. */
        public Builder scale(float scale) {
            if (!Float.isFinite(scale)) {
                throw new IllegalArgumentException("scale: must be finite, got " + scale);
            }
            this.scale = scale;
            return this;
        }

        /** Local window: keys at most {@code left} before and {@code right} after the diagonal; -1 = unbounded. */
        public Builder window(int left, int right) {
            if (left < -1 || right < -1) {
                throw new IllegalArgumentException("window: left and right must be >= -1 (-1 = unbounded), got ("
                        + left + ", " + right + ")");
            }
            this.windowLeft = left;
            this.windowRight = right;
            return this;
        }

        /** Logit soft-capping {@code s = c tanh(s / c)}; {@code c > 0}, or 0 to turn it off. */
        public Builder softcap(float softcap) {
            if (!Float.isFinite(softcap) || softcap < 0) {
                throw new IllegalArgumentException("softcap: must be finite and >= 0 (0 = off), got " + softcap);
            }
            this.softcap = softcap;
            return this;
        }

        /** ALiBi: one finite slope per query head ({@code s += -m_h |i + offset - j|}); null to turn it off. */
        public Builder alibiSlopes(float[] perQueryHead) {
            if (perQueryHead == null) {
                this.alibiSlopes = null;
                return this;
            }
            if (perQueryHead.length == 0) {
                throw new IllegalArgumentException("alibiSlopes: must hold one slope per query head, got an empty array");
            }
            for (int h = 0; h < perQueryHead.length; h++) {
                if (!Float.isFinite(perQueryHead[h])) {
                    throw new IllegalArgumentException("alibiSlopes: slope " + h + " must be finite, got " + perQueryHead[h]);
                }
            }
            this.alibiSlopes = perQueryHead.clone();
            return this;
        }

        public AttentionOptions build() {
            return new AttentionOptions(this);
        }
    }
}
