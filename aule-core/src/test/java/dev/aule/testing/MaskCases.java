package dev.aule.testing;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.mask.AttentionMask;
import dev.aule.mask.BlockMask;
import dev.aule.mask.MaskMod;
import dev.aule.mask.ScoreMod;

import java.util.SplittableRandom;

/**
 * Random dense masks, biases, MaskMods (with and without a BlockMask) and ScoreMods for a call's
 * shape, added to other options so every combination with causal, window, softcap, ALiBi and GQA
 * comes up. Masks leave rows with no visible key now and then, on purpose.
 */
public final class MaskCases {
    private MaskCases() {}

    /**
     * {@code base} plus, each about half the time, a dense mask, a bias, a MaskMod and a ScoreMod for
     * {@code [batch, queryHeads, queryLen, keyLen]}; at least one of them. With {@code differentiable},
     * every ScoreMod carries its derivative.
     */
    public static AttentionOptions add(
            SplittableRandom rnd,
            AttentionOptions base,
            int batch,
            int queryHeads,
            int queryLen,
            int keyLen,
            boolean differentiable) {
        AttentionOptions.Builder b = base.toBuilder();
        int kinds = 0;
        while (kinds == 0) {
            if (rnd.nextBoolean()) {
                b.mask(denseMask(rnd, batch, queryHeads, queryLen, keyLen));
                kinds++;
            }
            if (rnd.nextInt(5) < 2) {
                b.bias(bias(rnd, batch, queryHeads, queryLen, keyLen));
                kinds++;
            }
            if (rnd.nextBoolean()) {
                MaskMod mod = maskMod(rnd, queryLen, keyLen);
                boolean perHead = mod instanceof PerHead;
                if (rnd.nextBoolean()) {
                    b.blockMask(
                            perHead
                                    ? BlockMask.of(mod, batch, queryHeads, queryLen, keyLen)
                                    : BlockMask.of(mod, queryLen, keyLen));
                } else {
                    b.maskMod(mod);
                }
                kinds++;
            }
            if (rnd.nextInt(5) < 2) {
                b.scoreMod(scoreMod(rnd, queryHeads, differentiable));
                kinds++;
            }
        }
        return b.build();
    }

    /** A mask of random density and broadcast extents; some rows hidden entirely. */
    public static AttentionMask denseMask(SplittableRandom rnd, int batch, int queryHeads, int queryLen, int keyLen) {
        int mb = rnd.nextBoolean() ? 1 : batch;
        int mh = rnd.nextBoolean() ? 1 : queryHeads;
        double density = new double[] {0.1, 0.5, 0.9, 1.0}[rnd.nextInt(4)];
        boolean[] data = new boolean[mb * mh * queryLen * keyLen];
        for (int x = 0; x < data.length; x++) {
            data[x] = rnd.nextDouble() < density;
        }
        for (int row = 0; row < mb * mh * queryLen; row++) {
            if (rnd.nextInt(6) == 0) {
                java.util.Arrays.fill(data, row * keyLen, (row + 1) * keyLen, false);
            }
        }
        return AttentionMask.of(data, mb, mh, queryLen, keyLen);
    }

    /** A bias in [-2, 2) of random dtype and broadcast extents (sometimes by zero strides), a few -inf. */
    public static Tensor bias(SplittableRandom rnd, int batch, int queryHeads, int queryLen, int keyLen) {
        DType dtype = DType.values()[rnd.nextInt(3)];
        int bb = rnd.nextBoolean() ? 1 : batch;
        int bh = rnd.nextBoolean() ? 1 : queryHeads;
        Tensor t = Tensor.allocate(dtype, bb, bh, queryLen, keyLen);
        boolean withInf = rnd.nextInt(3) == 0;
        for (int b = 0; b < bb; b++) {
            for (int h = 0; h < bh; h++) {
                for (int i = 0; i < queryLen; i++) {
                    for (int j = 0; j < keyLen; j++) {
                        float x = withInf && rnd.nextInt(4) == 0
                                ? Float.NEGATIVE_INFINITY
                                : (float) (rnd.nextDouble() * 4 - 2);
                        t.set(b, h, i, j, x);
                    }
                }
            }
        }
        if (bb == 1 && bh == 1 && batch * queryHeads > 1 && rnd.nextBoolean()) {
            // The same data viewed at the call's full extents through zero strides.
            long[] strides = t.strides();
            return Tensor.of(t.memory(), dtype, new long[] {batch, queryHeads, queryLen, keyLen}, new long[] {
                0, 0, strides[2], strides[3]
            });
        }
        return t;
    }

    /** A MaskMod that reads b and h; {@link #add} builds its BlockMask per (batch, head). */
    interface PerHead extends MaskMod {}

    /** One of the built-ins, a combination, or a pseudo-random per-head pattern. */
    public static MaskMod maskMod(SplittableRandom rnd, int queryLen, int keyLen) {
        int n = Math.max(queryLen, keyLen);
        return switch (rnd.nextInt(7)) {
            case 0 -> MaskMod.causal();
            case 1 -> MaskMod.causal(keyLen - queryLen);
            case 2 -> MaskMod.slidingWindow(rnd.nextInt(1 + n / 2));
            case 3 -> MaskMod.prefixLm(rnd.nextInt(1 + keyLen));
            case 4 -> MaskMod.document(documents(rnd, queryLen), documents(rnd, keyLen));
            case 5 ->
                MaskMod.document(documents(rnd, queryLen), documents(rnd, keyLen))
                        .and(MaskMod.causal())
                        .or(MaskMod.prefixLm(rnd.nextInt(3)));
            default -> {
                int salt = rnd.nextInt(1 << 20);
                PerHead mod =
                        (b, h, q, kv) -> ((b * 31 + h * 17 + q * 7 + kv * 13 + salt) * 0x9E3779B1 >>> 28) % 3 != 0;
                yield mod;
            }
        };
    }

    /** Sorted document ids: runs of random lengths, as packed sequences have. */
    public static int[] documents(SplittableRandom rnd, int length) {
        int[] ids = new int[length];
        int doc = 0;
        for (int x = 0; x < length; x++) {
            if (x > 0 && rnd.nextInt(Math.max(1, length / 4)) == 0) {
                doc++;
            }
            ids[x] = doc;
        }
        return ids;
    }

    /** A built-in or custom ScoreMod; with {@code differentiable}, always with its derivative. */
    public static ScoreMod scoreMod(SplittableRandom rnd, int queryHeads, boolean differentiable) {
        float[] slopes = new float[queryHeads];
        for (int h = 0; h < queryHeads; h++) {
            slopes[h] = (float) (rnd.nextDouble() * 0.05);
        }
        float c = (float) (0.5 + rnd.nextDouble() * 3);
        ScoreMod plain = (s, b, h, q, kv) -> 0.7f * s + 0.05f * ((q - kv) % 5) + 0.1f * h - 0.2f * b;
        ScoreMod hiding = (s, b, h, q, kv) ->
                (q + 2 * kv + h) % 5 == 0 ? Float.NEGATIVE_INFINITY : s + 0.3f * (float) Math.sin(s);
        return switch (rnd.nextInt(differentiable ? 4 : 5)) {
            case 0 -> ScoreMod.softcap(c);
            case 1 -> ScoreMod.alibi(slopes);
            case 2 -> ScoreMod.withDerivative(plain, (s, b, h, q, kv) -> 0.7f);
            case 3 -> ScoreMod.withDerivative(hiding, (s, b, h, q, kv) -> 1 + 0.3f * (float) Math.cos(s));
            default -> plain;
        };
    }
}
