package dev.aule.models;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class PanelArenaTest {
    private static final List<PanelArena.Shape> SHAPES = List.of(
            new PanelArena.Shape(40, 70),
            new PanelArena.Shape(17, 5),
            new PanelArena.Shape(96, 1152),
            new PanelArena.Shape(33, 129),
            new PanelArena.Shape(1, 1));

    @Test
    void weightsStartLinesAndGiveTheProductsOfTheirOwnArrays() {
        Random random = new Random(11);
        // Packed in an order other than the sizing's: the arena's room does not depend on it.
        List<PanelArena.Shape> order = new ArrayList<>(SHAPES);
        java.util.Collections.reverse(order);
        PanelArena arena = PanelArena.forShapes(SHAPES);
        List<Gemm.Packed> packed = new ArrayList<>();
        List<float[]> weights = new ArrayList<>();
        for (PanelArena.Shape shape : order) {
            float[] w = gaussian(random, shape.k() * shape.n());
            weights.add(w);
            packed.add(arena.pack(w, shape.k(), shape.n()));
        }
        int end = 0;
        for (int i = 0; i < packed.size(); i++) {
            Gemm.Packed p = packed.get(i);
            assertSame(packed.get(0).store(), p.store(), "one array for all");
            assertEquals(p.offset(), LineAlignment.lineStart(p.offset()), "weight " + i + " starts a line");
            assertTrue(p.offset() >= end, "weight " + i + " after the one before");
            end = p.offset() + Gemm.packedLength(p.k(), p.n());
            int rows = 8;
            float[] a = gaussian(random, rows * p.k());
            float[] inArena = new float[rows * p.n()];
            float[] alone = new float[rows * p.n()];
            Gemm.multiply(a, rows, p, inArena);
            Gemm.multiply(a, rows, Gemm.pack(weights.get(i), p.k(), p.n()), alone);
            assertArrayEquals(alone, inArena, "the bits of the weight in an array of its own");
        }
    }

    @Test
    void aShapeItWasNotSizedForIsRefused() {
        PanelArena arena = PanelArena.forShapes(List.of(new PanelArena.Shape(4, 4)));
        arena.pack(new float[16], 4, 4);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> arena.pack(new float[16], 4, 4));
        assertTrue(e.getMessage().contains("does not fit"), e.getMessage());
    }

    @Test
    void packedAndLayerArgumentsAreChecked() {
        IllegalArgumentException room = assertThrows(
                IllegalArgumentException.class, () -> new Gemm.Packed(new float[Gemm.packedLength(4, 4)], 1, 4, 4));
        assertTrue(room.getMessage().startsWith("offset: 1 leaves no room"), room.getMessage());
        IllegalArgumentException bias =
                assertThrows(IllegalArgumentException.class, () -> Linear.of(new float[12], new float[4], 4, 3));
        assertEquals("bias: 4 values for a layer of 3 outputs", bias.getMessage());
    }

    private static float[] gaussian(Random random, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float) random.nextGaussian();
        return x;
    }
}
