package dev.aule.mask;

import dev.aule.AttentionOptions;

import java.util.Objects;

/**
 * A programmable score: maps the score of query {@code qIdx} and key {@code kvIdx} (batch {@code b},
 * query head {@code h}; 0-based logical positions) to a new score. It sees the score after scale,
 * softcap, ALiBi and the additive bias, and before masking; returning {@code -inf} hides the key.
 *
 * <p>The backward needs the derivative {@code d apply / d score}: attach it with
 * {@link #withDerivative}. Asking for gradients with a ScoreMod that has none is an
 * {@link IllegalArgumentException}. Implementations must be pure and thread-safe.
 */
@FunctionalInterface
public interface ScoreMod {

    /**
     * The new score of one (query, key) pair.
     *
     * @param score the score so far
     * @param b the batch entry
     * @param h the query head
     * @param qIdx the query position, 0-based
     * @param kvIdx the key position, 0-based
     * @return the score to use; {@code -inf} hides the key
     */
    float apply(float score, int b, int h, int qIdx, int kvIdx);

    /**
     * The derivative of {@link #apply} with respect to {@code score}, or null when unknown (no backward).
     *
     * @return the derivative, or null
     */
    default Derivative derivative() {
        return null;
    }

    /** {@code d apply(score, ...) / d score}, evaluated at the score the ScoreMod received. */
    @FunctionalInterface
    interface Derivative {
        /**
         * The derivative at one pair.
         *
         * @param score the score the ScoreMod received
         * @param b the batch entry
         * @param h the query head
         * @param qIdx the query position, 0-based
         * @param kvIdx the key position, 0-based
         * @return {@code d apply / d score} there
         */
        float at(float score, int b, int h, int qIdx, int kvIdx);
    }

    /**
     * {@code mod} with its derivative, so the backward can use it.
     *
     * @param mod the ScoreMod
     * @param derivative its derivative
     * @return the ScoreMod with it
     */
    static ScoreMod withDerivative(ScoreMod mod, Derivative derivative) {
        Objects.requireNonNull(mod, "mod");
        Objects.requireNonNull(derivative, "derivative");
        return new ScoreMod() {
            @Override
            public float apply(float score, int b, int h, int qIdx, int kvIdx) {
                return mod.apply(score, b, h, qIdx, kvIdx);
            }

            @Override
            public Derivative derivative() {
                return derivative;
            }
        };
    }

    /**
     * Soft-capping {@code c tanh(s / c)}, {@code c > 0}, with its derivative {@code 1 - tanh^2(s / c)}.
     *
     * @param cap the constant {@code c}
     * @return the ScoreMod
     */
    static ScoreMod softcap(float cap) {
        if (!(cap > 0) || !Float.isFinite(cap)) {
            throw new IllegalArgumentException("cap: must be finite and > 0, got " + cap);
        }
        return withDerivative((s, b, h, q, kv) -> cap * (float) Math.tanh(s / cap), (s, b, h, q, kv) -> {
            double t = Math.tanh(s / cap);
            return (float) (1 - t * t);
        });
    }

    /**
     * ALiBi {@code s - m_h |qIdx - kvIdx|} with one slope per query head (copied); derivative 1. Aligned
     * top-left: equals {@link AttentionOptions.Builder#alibiSlopes} when {@code Sq == Sk}.
     *
     * @param slopesPerQueryHead one slope per query head
     * @return the ScoreMod
     */
    static ScoreMod alibi(float[] slopesPerQueryHead) {
        float[] slopes =
                Objects.requireNonNull(slopesPerQueryHead, "slopesPerQueryHead").clone();
        for (int h = 0; h < slopes.length; h++) {
            if (!Float.isFinite(slopes[h])) {
                throw new IllegalArgumentException(
                        "slopesPerQueryHead: slope " + h + " must be finite, got " + slopes[h]);
            }
        }
        return withDerivative((s, b, h, q, kv) -> s - slopes[h] * Math.abs(q - kv), (s, b, h, q, kv) -> 1f);
    }
}
