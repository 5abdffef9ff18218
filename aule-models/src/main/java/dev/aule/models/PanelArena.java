package dev.aule.models;

import java.util.List;

/**
 * The packed weights of a model's dense layers ({@link Gemm.Packed}) in one array, each starting a 64-byte line
 * ({@link LineAlignment}), so that every panel load of the product kernel does. One array holds them all because a
 * model's weights together are large enough (tens of megabytes for the smallest BERT-family encoders) for the
 * collector to start them on a boundary, where a single small layer's would not be.
 *
 * <p>Sized once for the shapes the model will pack; {@link #pack} hands out the room in order. Not thread-safe: a
 * model is read on one thread.
 */
final class PanelArena {
    /** A dense layer's weight shape: {@code k} inputs by {@code n} outputs. */
    record Shape(int k, int n) {}

    /*
     * Invariant: next is the first free index; every weight packed so far lies in [lineStart(0), next). The store has
     * room for every shape given at construction with a line's worth of padding before each, so a caller that packs
     * those shapes, in any order, never runs out.
     */
    private final float[] store;
    private int next;

    private PanelArena(int floats) {
        this.store = new float[floats];
    }

    /** An arena with room for one weight of each of {@code shapes}. */
    static PanelArena forShapes(List<Shape> shapes) {
        int floats = 0;
        for (Shape shape : shapes) {
            floats = Math.addExact(
                    floats, Math.addExact(Gemm.packedLength(shape.k(), shape.n()), LineAlignment.LINE_FLOATS));
        }
        return new PanelArena(floats);
    }

    /** {@code w[k][n]} (row-major) packed into the next line-aligned room. */
    Gemm.Packed pack(float[] w, int k, int n) {
        int offset = LineAlignment.lineStart(next);
        int length = Gemm.packedLength(k, n);
        if (offset > store.length - length) {
            throw new IllegalStateException("a " + k + " x " + n + " weight does not fit: the arena was sized for"
                    + " other shapes (" + (store.length - next) + " of " + store.length + " floats left)");
        }
        Gemm.packInto(w, k, n, store, offset);
        next = offset + length;
        return new Gemm.Packed(store, offset, k, n);
    }
}
