package dev.aule.serving;

import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** RoPE against float64 rotations written from the definition, and fused into cache appends. */
class RopeTest {
    private static final Rope.Scaling[] SCALINGS = {
        new Rope.Scaling.None(), new Rope.Scaling.Linear(4), new Rope.Scaling.Ntk(8)
    };

    /** The angle of pair {@code i} at {@code position}, from the definition. */
    private static double angle(Rope rope, int i, int position) {
        int r = rope.rotaryDim();
        double base = rope.theta();
        double pos = position;
        if (rope.scaling().orElseThrow() instanceof Rope.Scaling.Linear(double factor)) {
            pos /= factor;
        } else if (rope.scaling().orElseThrow() instanceof Rope.Scaling.Ntk(double factor)) {
            base *= Math.pow(factor, r / (r - 2.0));
        }
        return pos / Math.pow(base, 2.0 * i / r);
    }

    /** Pair {@code i} of a row: its two element indices. */
    private static int[] pair(Rope rope, int i) {
        return rope.style() == Rope.Style.NEOX ? new int[] {i, i + rope.rotaryDim() / 2} : new int[] {2 * i, 2 * i + 1};
    }

    @Test
    void rotationsMatchTheDefinitionForEveryStyleAndScaling() {
        SplittableRandom rnd = new SplittableRandom(1);
        for (Rope.Style style : Rope.Style.values()) {
            for (Rope.Scaling scaling : SCALINGS) {
                for (int[] dims : new int[][] {{64, 64}, {128, 128}, {96, 32}, {10, 4}}) { // {headDim, rotaryDim}
                    Rope rope = Rope.of(dims[1], 5000, 10000, style, scaling);
                    Tensor x = Tensors.random(rnd, DType.F32, 2, 3, 5, dims[0]);
                    float[] before = x.toFloatArray();
                    int[] starts = {0, 4000};
                    rope.apply(x, starts);
                    float[] after = x.toFloatArray();
                    for (int b = 0; b < 2; b++) {
                        for (int h = 0; h < 3; h++) {
                            for (int s = 0; s < 5; s++) {
                                int base = ((b * 3 + h) * 5 + s) * dims[0];
                                for (int i = 0; i < dims[1] / 2; i++) {
                                    int[] p = pair(rope, i);
                                    double a = angle(rope, i, starts[b] + s);
                                    double x0 = before[base + p[0]];
                                    double x1 = before[base + p[1]];
                                    assertEquals(
                                            x0 * Math.cos(a) - x1 * Math.sin(a),
                                            after[base + p[0]],
                                            2e-6,
                                            style + " " + scaling);
                                    assertEquals(
                                            x1 * Math.cos(a) + x0 * Math.sin(a),
                                            after[base + p[1]],
                                            2e-6,
                                            style + " " + scaling);
                                }
                                for (int e = dims[1]; e < dims[0]; e++) {
                                    assertEquals(before[base + e], after[base + e], "past the rotary dim: untouched");
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    @Test
    void scoresOfRotatedQueriesAndKeysDependOnlyOnTheDistance() {
        SplittableRandom rnd = new SplittableRandom(2);
        for (Rope.Style style : Rope.Style.values()) {
            Rope rope = Rope.of(64, 3000, 500000, style);
            Tensor q = Tensors.random(rnd, DType.F32, 1, 1, 1, 64);
            Tensor k = Tensors.random(rnd, DType.F32, 1, 1, 1, 64);
            double near = dot(rotated(rope, q, 10), rotated(rope, k, 3));
            double far = dot(rotated(rope, q, 2507), rotated(rope, k, 2500));
            assertEquals(near, far, 1e-4, style.toString());
        }
    }

    private static float[] rotated(Rope rope, Tensor t, int position) {
        float[] row = new float[t.headDim()];
        t.readRow(0, 0, 0, row, 0);
        rope.rotate(row, 0, position);
        return row;
    }

    private static double dot(float[] a, float[] b) {
        double sum = 0;
        for (int i = 0; i < a.length; i++) {
            sum += (double) a[i] * b[i];
        }
        return sum;
    }

    @Test
    void fusedIntoAppendEqualsRotatingFirst() {
        SplittableRandom rnd = new SplittableRandom(3);
        for (Rope.Style style : Rope.Style.values()) {
            Rope rope = Rope.of(32, 100, 10000, style, new Rope.Scaling.Linear(2));
            KvCache fused = KvCache.allocate(DType.F32, 2, 2, 40, 32);
            KvCache plain = KvCache.allocate(DType.F32, 2, 2, 40, 32);
            PagedKvCache paged = PagedKvCache.create(DType.F32, 8, 4, 2, 32);
            int seq = paged.newSequence();
            for (int n : new int[] {7, 1, 5}) {
                Tensor k = Tensors.random(rnd, DType.F32, 2, 2, n, 32);
                Tensor v = Tensors.random(rnd, DType.F32, 2, 2, n, 32);
                int start = fused.length(0);
                fused.append(k, v, null, rope);
                paged.append(seq, k.sequence(0, 0, n), v.sequence(0, 0, n), rope);
                float[] kBefore = k.toFloatArray();
                Tensor rotatedK = Tensor.of(k.toFloatArray(), 2, 2, n, 32);
                rope.apply(rotatedK, start);
                plain.append(rotatedK, v);
                assertArrayEquals(kBefore, k.toFloatArray(), "the caller's keys are not modified");
            }
            assertArrayEquals(plain.keys().toFloatArray(), fused.keys().toFloatArray(), style.toString());
            assertArrayEquals(plain.values().toFloatArray(), fused.values().toFloatArray(), style.toString());
            int[] table = paged.blockTable(seq);
            float[] row = new float[32];
            float[] expected = new float[32];
            for (int j = 0; j < paged.length(seq); j++) {
                for (int h = 0; h < 2; h++) {
                    paged.keyBlocks().readRow(table[j / 4], h, j % 4, row, 0);
                    plain.keys().readRow(0, h, j, expected, 0);
                    assertArrayEquals(expected, row, "paged key " + j);
                }
            }
        }
    }

    @Test
    void badArgumentsAreRejected() {
        assertThrows(IllegalArgumentException.class, () -> Rope.of(7, 10, 10000, Rope.Style.NEOX));
        assertThrows(IllegalArgumentException.class, () -> Rope.of(8, 0, 10000, Rope.Style.NEOX));
        assertThrows(IllegalArgumentException.class, () -> Rope.of(8, 10, 1, Rope.Style.NEOX));
        assertThrows(IllegalArgumentException.class, () -> new Rope.Scaling.Linear(0.5));
        assertThrows(IllegalArgumentException.class, () -> new Rope.Scaling.Ntk(Double.NaN));
        Rope rope = Rope.of(8, 10, 10000, Rope.Style.GPTJ);
        Tensor x = Tensor.allocate(DType.F32, 1, 1, 4, 8);
        x.fill(1f);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> rope.apply(x, 7));
        assertTrue(e.getMessage().contains("maxPositions 10"), e.getMessage());
        for (float value : x.toFloatArray()) {
            assertEquals(1f, value, "nothing rotated");
        }
        assertThrows(IllegalArgumentException.class, () -> rope.apply(Tensor.allocate(DType.F32, 1, 1, 1, 6), 0));
    }
}
