package dev.aule.cli;

import dev.aule.Tensor;

/** The contract's error measure and how it is shown. */
final class ErrorMeasure {
    private ErrorMeasure() {
    }

    /**
     * {@code max|out - ref| / max(1, max|ref|)}. NaN when either side holds a NaN (an unwritten,
     * poisoned element reads as NaN), infinite when an infinity is not matched exactly, so neither
     * can pass a tolerance. Matching infinities are the LSE of rows that see no key.
     */
    static double relative(Tensor out, Tensor ref) {
        float[] a = out.toFloatArray();
        float[] r = ref.toFloatArray();
        if (a.length != r.length) {
            throw new IllegalArgumentException("out: " + a.length + " elements, ref: " + r.length);
        }
        double maxDiff = 0;
        double maxRef = 0;
        boolean infinityMismatch = false;
        for (int i = 0; i < a.length; i++) {
            if (Float.isNaN(a[i]) || Float.isNaN(r[i])) {
                return Double.NaN;
            }
            if (Float.isInfinite(a[i]) || Float.isInfinite(r[i])) {
                infinityMismatch |= a[i] != r[i];
                continue;
            }
            maxDiff = Math.max(maxDiff, Math.abs((double) a[i] - r[i]));
            maxRef = Math.max(maxRef, Math.abs((double) r[i]));
        }
        return infinityMismatch ? Double.POSITIVE_INFINITY : maxDiff / Math.max(1, maxRef);
    }

    /** NaN fails too: the comparison is written so that it cannot pass. */
    static boolean passes(double error, double tolerance) {
        return error <= tolerance;
    }

    static String format(double error) {
        if (Double.isNaN(error)) {
            return "NaN";
        }
        if (Double.isInfinite(error)) {
            return "inf";
        }
        return String.format(java.util.Locale.ROOT, "%.2e", error);
    }
}
