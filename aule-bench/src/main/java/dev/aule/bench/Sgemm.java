package dev.aule.bench;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

import java.util.stream.IntStream;

/**
 * The machine's F32 matrix-multiply rate, measured in the same JVM as the attention kernels:
 * {@code C = A B} for square row-major matrices, on all cores. Not a BLAS: a register-blocked
 * Vector API kernel of the same shape as the attention micro-kernels (4 rows x 4 vectors of
 * accumulators, a 4-vector-wide panel of B kept in L2), so "percent of GEMM" compares like with like.
 */
final class Sgemm {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int L = F.length();
    private static final int PANEL = 4 * L;

    private Sgemm() {
    }

    /** {@code c = a b} with {@code n} a multiple of {@code 4 * lanes}. */
    static void multiply(float[] a, float[] b, float[] c, int n) {
        if (n % PANEL != 0) {
            throw new IllegalArgumentException("n: must be a multiple of " + PANEL + ", got " + n);
        }
        int panels = n / PANEL;
        int quads = n / 4;
        // One task per (panel, 64-row chunk): enough tasks for every core, each re-reading its panel from L2.
        int chunk = 32;
        IntStream.range(0, panels * (quads / chunk)).parallel().forEach(task -> {
            int panel = task % panels;
            int firstQuad = task / panels * chunk;
            // Packing the panel contiguously avoids rows n floats apart fighting over cache sets.
            float[] packed = new float[n * PANEL];
            for (int x = 0; x < n; x++) {
                System.arraycopy(b, x * n + panel * PANEL, packed, x * PANEL, PANEL);
            }
            for (int quad = firstQuad; quad < firstQuad + chunk; quad++) {
                kernel(a, packed, c, n, quad * 4, panel * PANEL);
            }
        });
    }

    /** Rows {@code row..row+3} of C, columns {@code col..col+PANEL-1}, from a packed {@code [n][PANEL]} panel of B. */
    private static void kernel(float[] a, float[] b, float[] c, int n, int row, int col) {
        int a0 = row * n;
        int a1 = a0 + n;
        int a2 = a1 + n;
        int a3 = a2 + n;
        FloatVector c00 = FloatVector.zero(F), c01 = c00, c02 = c00, c03 = c00;
        FloatVector c10 = c00, c11 = c00, c12 = c00, c13 = c00;
        FloatVector c20 = c00, c21 = c00, c22 = c00, c23 = c00;
        FloatVector c30 = c00, c31 = c00, c32 = c00, c33 = c00;
        for (int x = 0, bb = 0; x < n; x++, bb += PANEL) {
            FloatVector b0 = FloatVector.fromArray(F, b, bb);
            FloatVector b1 = FloatVector.fromArray(F, b, bb + L);
            FloatVector b2 = FloatVector.fromArray(F, b, bb + 2 * L);
            FloatVector b3 = FloatVector.fromArray(F, b, bb + 3 * L);
            FloatVector s = FloatVector.broadcast(F, a[a0 + x]);
            c00 = b0.fma(s, c00);
            c01 = b1.fma(s, c01);
            c02 = b2.fma(s, c02);
            c03 = b3.fma(s, c03);
            s = FloatVector.broadcast(F, a[a1 + x]);
            c10 = b0.fma(s, c10);
            c11 = b1.fma(s, c11);
            c12 = b2.fma(s, c12);
            c13 = b3.fma(s, c13);
            s = FloatVector.broadcast(F, a[a2 + x]);
            c20 = b0.fma(s, c20);
            c21 = b1.fma(s, c21);
            c22 = b2.fma(s, c22);
            c23 = b3.fma(s, c23);
            s = FloatVector.broadcast(F, a[a3 + x]);
            c30 = b0.fma(s, c30);
            c31 = b1.fma(s, c31);
            c32 = b2.fma(s, c32);
            c33 = b3.fma(s, c33);
        }
        int o = row * n + col;
        c00.intoArray(c, o);
        c01.intoArray(c, o + L);
        c02.intoArray(c, o + 2 * L);
        c03.intoArray(c, o + 3 * L);
        o += n;
        c10.intoArray(c, o);
        c11.intoArray(c, o + L);
        c12.intoArray(c, o + 2 * L);
        c13.intoArray(c, o + 3 * L);
        o += n;
        c20.intoArray(c, o);
        c21.intoArray(c, o + L);
        c22.intoArray(c, o + 2 * L);
        c23.intoArray(c, o + 3 * L);
        o += n;
        c30.intoArray(c, o);
        c31.intoArray(c, o + L);
        c32.intoArray(c, o + 2 * L);
        c33.intoArray(c, o + 3 * L);
    }
}
