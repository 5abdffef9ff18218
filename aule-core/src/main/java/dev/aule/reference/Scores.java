package dev.aule.reference;

import dev.aule.AttentionOptions;
import dev.aule.Tensor;
import dev.aule.mask.AttentionMask;
import dev.aule.mask.MaskMod;
import dev.aule.mask.ScoreMod;
import dev.aule.spi.AttentionShape;
import dev.aule.spi.Dropout;
import dev.aule.spi.Visibility;

/**
 * The score of one (query, key) pair in float64, straight from the semantics, for the reference's
 * forward and backward: {@code s = scale q.k}, softcap, ALiBi, {@code + bias}, ScoreMod; masked (returned
 * as {@code -inf}) outside the causal/window interval, where the dense mask or the MaskMod says no, or
 * where the score itself is {@code -inf} (a {@code -inf} bias masks before the ScoreMod is called). The BlockMask is ignored: it only lets fast backends skip work.
 */
final class Scores {
    private final Visibility visibility;
    private final double scale;
    private final double softcap;
    private final AttentionOptions options; // the ALiBi slopes
    private final AttentionMask mask;
    private final Tensor bias;
    private final MaskMod maskMod;
    private final ScoreMod scoreMod;
    private final ScoreMod.Derivative scoreModDerivative;
    private final int batchBase;
    private final boolean dropout;
    private final long dropoutSeed;
    private final int dropoutThreshold;
    private final double dropoutScale;

    /**
     * The scores of a call whose batch entry 0 is batch {@code batchBase} for dropout and per-batch ALiBi (a packed
     * sequence's index; 0 for a plain call).
     */
    Scores(AttentionShape shape, AttentionOptions options, int batchBase) {
        this.batchBase = batchBase;
        this.dropout = options.hasDropout();
        this.dropoutSeed = options.dropoutSeed();
        this.dropoutThreshold = Dropout.threshold(options.dropout());
        this.dropoutScale = 1 / (1 - (double) options.dropout());
        this.visibility = Visibility.of(shape.queryLen(), shape.keyLen(), options);
        this.scale = scale(options, shape.headDim());
        this.softcap = options.softcap();
        this.options = options;
        this.mask = options.mask();
        this.bias = options.bias();
        this.maskMod = options.maskMod();
        this.scoreMod = options.scoreMod();
        this.scoreModDerivative = scoreMod == null ? null : scoreMod.derivative();
    }

    /**
     * Scores are F32 values (semantics rule 11): one beyond the F32 range is an infinity, so a row whose score
     * overflows saturates (+inf) or hides the key (-inf) as in the kernels, instead of the float64 limit.
     */
    private static double inFloatRange(double s) {
        return s > Float.MAX_VALUE ? Double.POSITIVE_INFINITY : s < -Float.MAX_VALUE ? Double.NEGATIVE_INFINITY : s;
    }

    /** The scale in float64: the explicit one, or {@code 1/sqrt(headDim)} computed in float64. */
    static double scale(AttentionOptions options, int headDim) {
        return options.explicitScale().map(Float::doubleValue).orElse(1 / Math.sqrt(headDim));
    }

    Visibility visibility() {
        return visibility;
    }

    /** The dropout key of row {@code i} of query head {@code h} of batch entry {@code b} (0 without dropout). */
    long dropoutRow(int b, int h, int i) {
        return dropout ? Dropout.rowKey(dropoutSeed, batchBase + b, h, i) : 0L;
    }

    /** What dropout multiplies the probability of key {@code j} of a row by: 1 without, else 0 or {@code 1/(1-p)}. */
    double dropoutFactor(long rowKey, int j) {
        if (!dropout) {
            return 1;
        }
        return Dropout.keep(rowKey, j, dropoutThreshold) ? dropoutScale : 0;
    }

    /**
     * The final score of query {@code i}, key {@code j} from {@code dot = q_i . k_j}, or {@code -inf} when
     * the key is hidden. When {@code slope} is not null, {@code slope[0]} receives
     * {@code d score / d (scale q.k)}: the softcap's derivative times the ScoreMod's.
     */
    double score(int b, int h, int i, int j, double dot, double[] slope) {
        if (j < visibility.first(i) || j > visibility.last(i)) {
            return Double.NEGATIVE_INFINITY;
        }
        if (mask != null && !mask.get(b, h, i, j)) {
            return Double.NEGATIVE_INFINITY;
        }
        if (maskMod != null && !maskMod.visible(b, h, i, j)) {
            return Double.NEGATIVE_INFINITY;
        }
        double s = inFloatRange(scale * dot);
        double derivative = 1;
        if (softcap > 0) {
            double t = Math.tanh(s / softcap);
            s = softcap * t;
            derivative = 1 - t * t;
        }
        if (options.hasAlibi()) {
            s -= (double) options.alibiSlope(batchBase + b, h) * Math.abs((long) i + visibility.offset() - j);
        }
        if (bias != null) {
            double add = bias.get(bias.batch() == 1 ? 0 : b, bias.heads() == 1 ? 0 : h, i, j);
            s = add == Double.NEGATIVE_INFINITY ? add : s + add; // hides the key whatever its score
        }
        s = inFloatRange(s);
        if (s == Double.NEGATIVE_INFINITY) {
            return s; // a bias of -inf masks: the ScoreMod never sees it
        }
        if (scoreMod != null) {
            float in = (float) s;
            s = scoreMod.apply(in, b, h, i, j);
            if (slope != null && scoreModDerivative != null) {
                derivative *= scoreModDerivative.at(in, b, h, i, j);
            }
        }
        if (slope != null) {
            slope[0] = derivative;
        }
        return s;
    }

    /** The sink logit of query head {@code h} ({@code -inf} without sinks): one more softmax term with no value. */
    double sink(int h) {
        return options.sink(h);
    }
}
