package dev.aule.cli;

import jdk.incubator.vector.VectorShape;

/** Kept apart so its jdk.incubator.vector reference loads only when {@link VectorApi#present()} is true. */
final class PreferredVectorWidth {
    private PreferredVectorWidth() {}

    static int bits() {
        return VectorShape.preferredShape().vectorBitSize();
    }
}
