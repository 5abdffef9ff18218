package dev.aule.cli;

import dev.aule.DType;
import dev.aule.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/** Where and how a test tensor lives: each one reaches a different path through Tensor's strides and memory. */
enum TensorLayout {
    /** Contiguous {@code [B, H, S, D]} on the heap. */
    BHSD("bhsd"),
    /** {@code [B, S, H, D]} in memory, the layout engines keep, seen as BHSD through strides. */
    BSHD("bshd"),
    /** Contiguous BHSD in native memory from an {@link Arena}. */
    OFF_HEAP("off-heap");

    private final String label;

    TensorLayout(String label) {
        this.label = label;
    }

    String label() {
        return label;
    }

    /**
     * A tensor of logical shape {@code [b, h, s, d]}. The arena owns off-heap memory; it must be
     * shared because backends read and write from their worker threads.
     */
    Tensor allocate(Arena arena, DType dtype, int b, int h, int s, int d) {
        long count = (long) b * h * s * d;
        long[] shape = {b, h, s, d};
        return switch (this) {
            case BHSD -> Tensor.allocate(dtype, b, h, s, d);
            case BSHD ->
                dtype == DType.F32
                        ? Tensor.ofBshd(new float[Math.toIntExact(count)], b, s, h, d)
                        : Tensor.of(MemorySegment.ofArray(new short[Math.toIntExact(count)]), dtype, shape, new long[] {
                            (long) s * h * d, d, (long) h * d, 1
                        });
            case OFF_HEAP ->
                Tensor.of(arena.allocate(count * dtype.byteSize(), 64), dtype, shape, new long[] {
                    (long) h * s * d, (long) s * d, d, 1
                });
        };
    }
}
