package dev.aule.bench;

import dev.aule.cpu.vector.Products;
import dev.aule.cpu.vector.SimdWidth;

import java.util.stream.IntStream;

/**
 * The machine's F32 matrix-multiply rate, measured in the same JVM as the attention kernels:
 * {@code C = A B} for square row-major matrices, on all cores. Not a BLAS: the attention kernels' own
 * register-blocked product ({@link Products#multiply}: 4 rows x 4 vectors, 4 x 2 on AVX2) over a panel of B
 * one key block wide kept in L2, so "percent of GEMM" compares like with like. {@code dev.aule.cpu.vector} is
 * not exported by the module; the bench runs on the class path, where it is reachable.
 */
final class Sgemm {
    /** Rows of C per task (the last task takes what is left): 128 rows re-read their panel of B from L2. */
    private static final int TASK_ROWS = 128;

    private Sgemm() {}

    /** {@code c = a b} with {@code n} a multiple of the key block ({@code 4 * lanes}). */
    static void multiply(float[] a, float[] b, float[] c, int n) {
        int panel = SimdWidth.keyTile();
        if (n < 1 || n % panel != 0) {
            throw new IllegalArgumentException("n: must be a positive multiple of " + panel + ", got " + n);
        }
        int panels = n / panel;
        int rowTasks = Math.ceilDiv(n, TASK_ROWS);
        IntStream.range(0, panels * rowTasks).parallel().forEach(task -> {
            int col = task % panels * panel;
            int row = task / panels * TASK_ROWS;
            // Packing the panel contiguously avoids rows n floats apart fighting over cache sets.
            float[] packed = new float[n * panel];
            for (int x = 0; x < n; x++) {
                System.arraycopy(b, x * n + col, packed, x * panel, panel);
            }
            // Every task's row count is a multiple of 4, as the product needs: n and TASK_ROWS are.
            int rows = Math.min(TASK_ROWS, n - row);
            Products.multiply(a, row * n, rows, n, packed, 0, c, row * n + col, n);
        });
    }
}
