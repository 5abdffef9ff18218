package dev.aule;

import java.util.SplittableRandom;

/**
 * Run by {@link LinearMemoryTest} in a JVM with a small heap: a causal forward over one head of
 * {@code n} queries and keys (D = 64), then a few rows checked against a direct float64
 * computation of just those rows. Prints a line starting with OK, or exits with status 1.
 *
 * <p>Usage: {@code LongCausalForward <n>}
 */
public final class LongCausalForward {
    private static final int D = 64;

    private LongCausalForward() {}

    public static void main(String[] args) {
        int n = Integer.parseInt(args[0]);
        SplittableRandom rnd = new SplittableRandom(n);
        float[] q = random(rnd, n * D);
        float[] k = random(rnd, n * D);
        float[] v = random(rnd, n * D);
        Tensor out = Tensor.allocate(DType.F32, 1, 1, n, D);
        Tensor lse = Tensor.allocate(DType.F32, 1, 1, n, 1);
        out.fill(Float.NaN);
        lse.fill(Float.NaN);

        long start = System.nanoTime();
        Backends.get("cpu")
                .forward(
                        Tensor.of(q, 1, 1, n, D),
                        Tensor.of(k, 1, 1, n, D),
                        Tensor.of(v, 1, 1, n, D),
                        out,
                        lse,
                        AttentionOptions.builder().causal(true).build());
        double seconds = (System.nanoTime() - start) / 1e9;

        // Every element written (no NaN poison left), then sampled rows exact to the contract's 1e-5.
        for (float x : out.toFloatArray()) {
            if (Float.isNaN(x)) {
                fail("an output element was never written (NaN poison left)");
            }
        }
        int[] rows = {0, 1, 63, 64, 1000, 12345, n / 2, n - 2, n - 1, rnd.nextInt(n), rnd.nextInt(n), rnd.nextInt(n)};
        double worst = 0;
        for (int row : rows) {
            if (row >= n) {
                continue;
            }
            double[] want = new double[D];
            double wantLse = directRow(q, k, v, row, want);
            double maxDiff = 0;
            double maxRef = 0;
            for (int x = 0; x < D; x++) {
                maxDiff = Math.max(maxDiff, Math.abs(out.get(0, 0, row, x) - want[x]));
                maxRef = Math.max(maxRef, Math.abs(want[x]));
            }
            double err = maxDiff / Math.max(1, maxRef);
            double lseErr = Math.abs(lse.get(0, 0, row, 0) - wantLse) / Math.max(1, Math.abs(wantLse));
            if (!(err < 1e-5) || !(lseErr < 1e-5)) {
                fail("row " + row + ": out error " + err + ", lse error " + lseErr);
            }
            worst = Math.max(worst, Math.max(err, lseErr));
        }
        System.out.printf(
                "OK n=%d forward %.1f s, worst sampled error %.2e, max heap %d MiB%n",
                n, seconds, worst, Runtime.getRuntime().maxMemory() >> 20);
    }

    /** Row {@code i} of causal attention in float64 (keys 0..i, scale 1/sqrt(D)) into {@code out}; returns its LSE. */
    private static double directRow(float[] q, float[] k, float[] v, int i, double[] out) {
        double scale = 1 / Math.sqrt(D);
        double[] s = new double[i + 1];
        double max = Double.NEGATIVE_INFINITY;
        for (int j = 0; j <= i; j++) {
            double dot = 0;
            for (int x = 0; x < D; x++) {
                dot += (double) q[i * D + x] * k[j * D + x];
            }
            s[j] = dot * scale;
            max = Math.max(max, s[j]);
        }
        double sum = 0;
        for (int j = 0; j <= i; j++) {
            s[j] = Math.exp(s[j] - max);
            sum += s[j];
        }
        for (int j = 0; j <= i; j++) {
            for (int x = 0; x < D; x++) {
                out[x] += s[j] / sum * v[j * D + x];
            }
        }
        return max + Math.log(sum);
    }

    private static float[] random(SplittableRandom rnd, int count) {
        float[] a = new float[count];
        for (int i = 0; i < count; i++) {
            a[i] = (float) (rnd.nextDouble() * 2 - 1);
        }
        return a;
    }

    private static void fail(String message) {
        System.out.println("FAILED " + message);
        System.exit(1);
    }
}
