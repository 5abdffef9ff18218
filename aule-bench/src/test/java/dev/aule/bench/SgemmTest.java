package dev.aule.bench;

import dev.aule.cpu.vector.SimdWidth;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class SgemmTest {

    /** Sizes that are whole key blocks but not whole 128-row tasks take a shorter last task. */
    @Test
    void everySizeOfWholeKeyBlocksMatchesAPlainProduct() {
        int panel = SimdWidth.keyTile();
        for (int n : new int[] {panel, 3 * panel, 128 + panel}) {
            Random rnd = new Random(n);
            float[] a = new float[n * n];
            float[] b = new float[n * n];
            for (int i = 0; i < a.length; i++) {
                a[i] = rnd.nextFloat() * 2 - 1;
                b[i] = rnd.nextFloat() * 2 - 1;
            }
            float[] c = new float[n * n];
            Sgemm.multiply(a, b, c, n);
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < n; j++) {
                    double sum = 0;
                    for (int x = 0; x < n; x++) {
                        sum += (double) a[i * n + x] * b[x * n + j];
                    }
                    assertEquals(sum, c[i * n + j], 1e-4 * Math.sqrt(n), "n " + n + ", c[" + i + "][" + j + "]");
                }
            }
        }
    }

    @Test
    void aSizeThatIsNotWholeKeyBlocksIsRejected() {
        int n = SimdWidth.keyTile() + 4;
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class,
                () -> Sgemm.multiply(new float[n * n], new float[n * n], new float[n * n], n));
        assertEquals(0, e.getMessage().indexOf("n: "), e.getMessage());
    }
}
