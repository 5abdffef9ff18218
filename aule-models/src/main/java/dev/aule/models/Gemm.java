package dev.aule.models;

import dev.aule.cpu.vector.Products;
import dev.aule.cpu.vector.SimdWidth;
import dev.aule.cpu.workers.WorkerTeam;

/**
 * {@code c[rows][n] = a[rows][k] w[k][n]} with {@code w} packed once into column panels, on aule-core's register-
 * blocked product ({@link Products#multiply}, 4 rows by one panel of {@link SimdWidth#keyTile()} columns) when the
 * Vector API is in the boot layer, else a scalar loop over the same panels. Row blocks and panels are spread over
 * the library's team of CPU threads ({@link WorkerTeam#shared()}), and each block's product runs in passes over {@link #K_BLOCK} panel rows; each output
 * element is one sequential sum over {@code k} whatever the split, so results do not depend on the number of
 * threads.
 */
final class Gemm {
    /** Rows per parallel task: a 64-row block of {@code a} stays in L2 while a panel streams past it. */
    private static final int ROW_BLOCK = 64;

    /**
     * Panel rows ({@code k}) per pass of the product over a row block: 128 rows of a 16-float-wide panel of 4
     * vectors are 32 KiB, which stay in L1 while every register block of the row block passes over them (a whole
     * panel at k = 384 or 1536 streams from L2 instead: the kernel ran at 68 % of the one-core FMA peak there and
     * 77 % at k = 128). The passes continue each running sum in order, so the bits are those of one pass.
     */
    private static final int K_BLOCK = 128;

    private static final boolean VECTOR = VectorApi.PRESENT;
    /** Columns per panel: the product kernel's width, or 16 for the scalar loop. */
    static final int PANEL = VECTOR ? VectorWidth.panel() : 16;

    private Gemm() {}

    /**
     * A packed {@code [k][n]} weight: panel {@code p} is {@code [k][PANEL]} at {@code offset + p * k * PANEL} in
     * {@code store}, the columns past {@code n} of the last panel zero.
     */
    record Packed(float[] store, int offset, int k, int n) {
        Packed {
            if (offset < 0 || offset > store.length - packedLength(k, n)) {
                throw new IllegalArgumentException("offset: " + offset + " leaves no room for a " + k + " x " + n
                        + " packed weight in a store of " + store.length);
            }
        }
    }

    /** Floats a packed {@code [k][n]} weight takes: whole panels. */
    static int packedLength(int k, int n) {
        return Math.multiplyExact(Math.multiplyExact(panels(n), k), PANEL);
    }

    /** {@code w[k][n]} (row-major) packed into an array of its own. */
    static Packed pack(float[] w, int k, int n) {
        float[] store = new float[packedLength(k, n)];
        packInto(w, k, n, store, 0);
        return new Packed(store, 0, k, n);
    }

    /** {@code w[k][n]} (row-major) packed into {@code store} from {@code offset}, where {@link Packed} finds it. */
    static void packInto(float[] w, int k, int n, float[] store, int offset) {
        int panels = panels(n);
        for (int p = 0; p < panels; p++) {
            int c0 = p * PANEL;
            int width = Math.min(PANEL, n - c0);
            for (int x = 0; x < k; x++) {
                System.arraycopy(w, x * n + c0, store, offset + (p * k + x) * PANEL, width);
            }
        }
    }

    static int panels(int n) {
        return (n + PANEL - 1) / PANEL;
    }

    /**
     * {@code c[r][j] = sum_x a[r][x] w[x][j]} for {@code r < rows} (a multiple of 4, the arrays that long),
     * {@code j < n}, with {@code a}'s rows {@code k} long and {@code c}'s {@code n}.
     */
    static void multiply(float[] a, int rows, Packed w, float[] c) {
        multiply(a, rows, w, c, (r0, count, c0, width) -> {});
    }

    /**
     * What a caller does with one block of {@code c} right after the product wrote it, while it is still in cache
     * and on the same thread: rows {@code [r0, r0 + rows)}, columns {@code [c0, c0 + width)}.
     */
    @FunctionalInterface
    interface Epilogue {
        void finish(int r0, int rows, int c0, int width);
    }

    /** {@link #multiply(float[], int, Packed, float[])}, then {@code epilogue} on each block written. */
    static void multiply(float[] a, int rows, Packed w, float[] c, Epilogue epilogue) {
        int k = w.k();
        int n = w.n();
        float[] packed = w.store();
        int base = w.offset();
        int rowBlocks = (rows + ROW_BLOCK - 1) / ROW_BLOCK;
        int panels = panels(n);
        WorkerTeam.shared().forEach(rowBlocks * panels, Integer.MAX_VALUE, task -> {
            // Consecutive tasks share a panel of w, which stays hot in cache over their row blocks.
            int p = task / rowBlocks;
            int r0 = (task % rowBlocks) * ROW_BLOCK;
            int count = Math.min(ROW_BLOCK, rows - r0);
            int c0 = p * PANEL;
            int width = Math.min(PANEL, n - c0);
            if (VECTOR && width == PANEL) {
                for (int x0 = 0; x0 < k; x0 += K_BLOCK) {
                    VectorWidth.multiply(
                            a,
                            r0 * k + x0,
                            k,
                            count,
                            Math.min(K_BLOCK, k - x0),
                            packed,
                            base + (p * k + x0) * PANEL,
                            c,
                            r0 * n + c0,
                            n,
                            x0 > 0);
                }
            } else {
                scalar(a, r0, count, k, packed, base + p * k * PANEL, c, c0, width, n);
            }
            epilogue.finish(r0, count, c0, width);
        });
    }

    private static void scalar(
            float[] a, int r0, int rows, int k, float[] packed, int pOff, float[] c, int c0, int width, int n) {
        float[] acc = new float[PANEL];
        for (int r = r0; r < r0 + rows; r++) {
            java.util.Arrays.fill(acc, 0f);
            int aRow = r * k;
            for (int x = 0; x < k; x++) {
                float e = a[aRow + x];
                int b = pOff + x * PANEL;
                for (int j = 0; j < width; j++) {
                    acc[j] = Math.fma(e, packed[b + j], acc[j]);
                }
            }
            System.arraycopy(acc, 0, c, r * n + c0, width);
        }
    }

    /** The Vector API kernel, in its own class so that nothing loads the Vector API without it. */
    private static final class VectorWidth {
        static int panel() {
            return SimdWidth.keyTile();
        }

        static void multiply(
                float[] a,
                int aOff,
                int aStride,
                int rows,
                int k,
                float[] b,
                int bOff,
                float[] c,
                int cOff,
                int cStride,
                boolean accumulate) {
            Products.multiply(a, aOff, aStride, rows, k, b, bOff, c, cOff, cStride, accumulate);
        }
    }
}
