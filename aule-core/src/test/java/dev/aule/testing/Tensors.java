package dev.aule.testing;

import dev.aule.DType;
import dev.aule.Tensor;

import java.util.SplittableRandom;

/** Test data and the contract's error measure. */
public final class Tensors {
    private Tensors() {
    }

    /** A BHSD tensor of the dtype filled with uniform values in [-1, 1) (never zeros). */
    public static Tensor random(SplittableRandom rnd, DType dtype, int b, int h, int s, int d) {
        Tensor t = Tensor.allocate(dtype, b, h, s, d);
        fillRandom(rnd, t);
        return t;
    }

    public static void fillRandom(SplittableRandom rnd, Tensor t) {
        for (int b = 0; b < t.batch(); b++) {
            for (int h = 0; h < t.heads(); h++) {
                for (int s = 0; s < t.seqLen(); s++) {
                    for (int d = 0; d < t.headDim(); d++) {
                        t.set(b, h, s, d, (float) (rnd.nextDouble() * 2 - 1));
                    }
                }
            }
        }
    }

    /**
     * The contract's error: {@code max|out - ref| / max(1, max|ref|)}; infinity when any element is
     * NaN or where one is infinite and the other not (so NaN and unwritten poison never pass).
     */
    public static double relativeError(Tensor out, Tensor ref) {
        float[] a = out.toFloatArray();
        float[] r = ref.toFloatArray();
        if (a.length != r.length) {
            throw new IllegalArgumentException("sizes differ: " + a.length + " vs " + r.length);
        }
        double maxDiff = 0;
        double maxRef = 0;
        for (int i = 0; i < a.length; i++) {
            if (Float.isNaN(a[i]) || Float.isNaN(r[i])) {
                return Double.POSITIVE_INFINITY;
            }
            if (Float.isInfinite(a[i]) || Float.isInfinite(r[i])) {
                if (a[i] != r[i]) {
                    return Double.POSITIVE_INFINITY;
                }
                continue;
            }
            maxDiff = Math.max(maxDiff, Math.abs((double) a[i] - r[i]));
            maxRef = Math.max(maxRef, Math.abs((double) r[i]));
        }
        return maxDiff / Math.max(1, maxRef);
    }
}
