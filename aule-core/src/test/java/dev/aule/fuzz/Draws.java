package dev.aule.fuzz;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.mask.BlockMask;
import dev.aule.mask.MaskMod;
import dev.aule.testing.Layout;
import dev.aule.testing.MaskCases;
import dev.aule.testing.Tensors;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;

/** Drawing shapes, tensors, hostile values and options from {@link Choices}, simplest first. */
final class Draws {
    /** Sequence lengths: 1, odd, around the CPU tiles (16, 64). */
    static final int[] LENGTHS = {1, 3, 2, 16, 17, 5, 33, 64, 31};
    /** Head dims: common, odd (partial vectors), 1. */
    static final int[] DIMS = {8, 16, 1, 7, 33, 64, 3};
    /** Upper bound on {@code B * Hq * Sq * Sk * (D + Dv)}: the float64 reference is slow on purpose. */
    static final long MAX_WORK = 300_000;

    private Draws() {}

    static DType dtype(Choices c) {
        return c.pick(DType.F32, DType.F16, DType.BF16);
    }

    static Layout layout(Choices c) {
        return c.pick(Layout.values());
    }

    /** A tensor of the layout, elements uniform in [-1, 1) from {@code rnd} (gaps NaN, as Layout poisons them). */
    static Tensor tensor(Layout layout, DType dtype, int b, int h, int s, int d, Arena arena, SplittableRandom rnd) {
        Tensor t = layout.allocate(dtype, b, h, s, d, arena, rnd);
        Tensors.fillRandom(rnd, t);
        return t;
    }

    /** A BHSD output or gradient of the layout, NaN everywhere (poisoned: an element never written stays NaN). */
    static Tensor poisoned(Layout layout, DType dtype, int b, int h, int s, int d, Arena arena, SplittableRandom rnd) {
        return layout.allocate(dtype, b, h, s, d, arena, rnd);
    }

    /** Hostile element values. */
    enum Values {
        PLAIN,
        NAN,
        POSITIVE_INFINITY,
        NEGATIVE_INFINITY,
        NEAR_MAX,
        ALL_NEAR_MAX,
        SUBNORMAL,
        LARGE
    }

    /** Writes hostile values of {@code kind} into {@code t} at a few random elements (or all). */
    static void poison(Values kind, Tensor t, SplittableRandom rnd) {
        if (kind == Values.PLAIN) {
            return;
        }
        float sign = rnd.nextBoolean() ? 1 : -1;
        if (kind == Values.ALL_NEAR_MAX) {
            for (int b = 0; b < t.batch(); b++) {
                for (int h = 0; h < t.heads(); h++) {
                    for (int s = 0; s < t.seqLen(); s++) {
                        for (int d = 0; d < t.headDim(); d++) {
                            t.set(b, h, s, d, sign * (Float.MAX_VALUE - rnd.nextInt(1000)));
                        }
                    }
                }
            }
            return;
        }
        int count = 1 + rnd.nextInt(3);
        // One sign for every huge value: +max and -max in one sum cancel, and the float64 reference, which
        // rounds the small terms away beside them, is then no exact oracle.
        for (int i = 0; i < count; i++) {
            float x = switch (kind) {
                case NAN -> Float.NaN;
                case POSITIVE_INFINITY -> Float.POSITIVE_INFINITY;
                case NEGATIVE_INFINITY -> Float.NEGATIVE_INFINITY;
                case NEAR_MAX -> sign * Float.MAX_VALUE;
                case SUBNORMAL -> Float.MIN_VALUE * (1 + rnd.nextInt(100));
                case LARGE -> (float) ((rnd.nextDouble() * 2 - 1) * 1e4);
                default -> throw new IllegalStateException();
            };
            t.set(rnd.nextInt(t.batch()), rnd.nextInt(t.heads()), rnd.nextInt(t.seqLen()), rnd.nextInt(t.headDim()), x);
        }
    }

    /**
     * The training options on top of {@code options} for a dense call of {@code batch} entries: dropout (extreme
     * probabilities included) and, where there are no per-head slopes, ALiBi slopes per batch entry.
     */
    static AttentionOptions training(Choices c, SplittableRandom rnd, AttentionOptions options, int batch, int heads) {
        AttentionOptions.Builder b = options.toBuilder();
        int dropout = c.below(5);
        if (dropout > 0) {
            b.dropout(c.note("dropout", new float[] {0, 0.1f, 0.5f, 0.99f, 1e-6f}[dropout]), rnd.nextLong());
        }
        if (!options.hasAlibi() && c.oneIn(4)) {
            float[][] slopes = new float[batch][heads];
            for (float[] row : slopes) {
                for (int h = 0; h < heads; h++) {
                    row[h] = (float) (rnd.nextDouble() - 0.5);
                }
            }
            c.note("alibiPerBatch", true);
            b.alibiSlopesPerBatch(slopes);
        }
        return b.build();
    }

    /**
     * Options for a call {@code [batch, queryHeads, queryLen, keyLen]}: causal, window, scale, softcap, ALiBi
     * (extreme slopes included) and, with {@code masks}, dense masks, biases (hostile values included),
     * MaskMods, BlockMasks and ScoreMods. {@code differentiable}: every ScoreMod has its derivative.
     */
    static AttentionOptions options(
            Choices c,
            SplittableRandom rnd,
            int batch,
            int queryHeads,
            int queryLen,
            int keyLen,
            boolean masks,
            boolean differentiable) {
        AttentionOptions.Builder b = AttentionOptions.builder().causal(c.note("causal", c.oneIn(2)));
        if (c.oneIn(3)) {
            int left = c.note("windowLeft", c.between(-1, keyLen + 1));
            int right = c.note("windowRight", c.between(-1, keyLen + 1));
            b.window(left, right);
        }
        int scale = c.below(9);
        if (scale > 0) {
            b.scale(c.note("scale", new float[] {0, 0.125f, 1, 10, -0.5f, 0, 1e-30f, 1e30f, 3e38f}[scale]));
        }
        int softcap = c.below(7);
        if (softcap > 0) {
            b.softcap(c.note("softcap", new float[] {0, 0.5f, 5, 30, 1e-30f, 3e38f, 2}[softcap]));
        }
        int alibi = c.below(6);
        if (alibi > 0) {
            float[] slopes = new float[queryHeads];
            for (int h = 0; h < queryHeads; h++) {
                slopes[h] = switch (alibi) {
                    case 1 -> (float) Math.pow(2, -8.0 * (h + 1) / queryHeads);
                    case 2 -> (float) rnd.nextDouble();
                    case 3 -> (float) -rnd.nextDouble();
                    case 4 -> h == 0 ? 1e37f : 0.5f;
                    default -> h == 0 ? -1e37f : 0.5f;
                };
            }
            c.note("alibi", alibi);
            b.alibiSlopes(slopes);
        }
        Contract.ALIBI_BEYOND_RANGE.set(alibi >= 4 && Math.max(queryLen, keyLen) >= 1);
        if (!masks) {
            return b.build();
        }
        if (c.oneIn(4)) {
            c.note("mask", "dense");
            b.mask(MaskCases.denseMask(rnd, batch, queryHeads, queryLen, keyLen));
        }
        int bias = c.below(8);
        if (bias >= 4) {
            Tensor t = MaskCases.bias(rnd, batch, queryHeads, queryLen, keyLen);
            Values hostile = c.note(
                    "biasValues",
                    c.pick(
                            Values.PLAIN,
                            Values.NEGATIVE_INFINITY,
                            Values.NAN,
                            Values.POSITIVE_INFINITY,
                            Values.NEAR_MAX));
            if (t.strides()[0] != 0) { // a zero-stride broadcast view shares one row: poison the data under it
                poison(hostile, t, rnd);
            }
            b.bias(t);
        }
        int mod = c.below(6);
        if (mod >= 3) {
            MaskMod m = MaskCases.maskMod(rnd, queryLen, keyLen);
            if (mod == 5) {
                c.note("maskMod", "with BlockMask");
                b.blockMask(BlockMask.of(m, batch, queryHeads, queryLen, keyLen));
            } else {
                c.note("maskMod", "plain");
                b.maskMod(m);
            }
        }
        if (c.oneIn(5)) {
            c.note("scoreMod", "drawn");
            b.scoreMod(MaskCases.scoreMod(rnd, queryHeads, differentiable));
        }
        return b.build();
    }

    /** A contiguous view of {@code shape} and {@code dtype} over the start of {@code memory}, or null if too small. */
    static Tensor over(MemorySegment memory, DType dtype, long[] shape) {
        long[] strides = {shape[1] * shape[2] * shape[3], shape[2] * shape[3], shape[3], 1};
        long bytes = shape[0] * strides[0] * dtype.byteSize();
        return bytes > memory.byteSize() ? null : Tensor.of(memory, dtype, shape, strides);
    }

    /** A view of {@code t}'s shape in which two elements share memory (a zero stride), or null when none can. */
    static Tensor zeroStride(Tensor t) {
        long[] strides = t.strides();
        long[] shape = t.shape();
        for (int i = 0; i < 4; i++) {
            if (shape[i] > 1) {
                strides[i] = 0;
                return Tensor.of(t.memory(), t.dtype(), shape, strides);
            }
        }
        return null;
    }

    static long[] shape(int b, int h, int s, int d) {
        return new long[] {b, h, s, d};
    }
}
