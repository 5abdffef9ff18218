package dev.aule.testing;

import dev.aule.DType;
import dev.aule.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;

/**
 * The memory layouts a tensor can have in the tests. Every layout but {@link #BHSD} leaves gaps or
 * puts the dimensions in another order, so a backend that assumes BHSD reads the wrong elements.
 * Memory is poisoned (every byte 0xFF, a NaN in F32, F16 and BF16) before use: reading a gap yields
 * NaN, and {@link #logicalElements} lets a test check that nothing outside the view was written.
 */
public enum Layout {
    /** Contiguous {@code [B, H, S, D]} on the heap: {@code Tensor.of(float[], ...)} or {@code Tensor.allocate}. */
    BHSD,
    /** {@code [B, S, H, D]} in memory, as most engines keep activations: {@code Tensor.ofBshd} for F32. */
    BSHD,
    /** A random order of the dimensions with gaps between rows, heads and batches, on the heap. */
    PADDED,
    /** Head-dim stride 2: every other element, as one half of an interleaved buffer. */
    INTERLEAVED,
    /** Contiguous BHSD in native memory. */
    OFF_HEAP,
    /** A random order of the dimensions with gaps, in native memory. */
    OFF_HEAP_PADDED;

    /**
     * A view of the given shape in this layout, every element (and every gap) NaN. Native memory
     * comes from {@code arena}, which the caller closes.
     */
    public Tensor allocate(DType dtype, int b, int h, int s, int d, Arena arena, SplittableRandom rnd) {
        int[] extent = {b, h, s, d};
        long[] strides = switch (this) {
            case BHSD, OFF_HEAP -> nested(extent, new int[] {3, 2, 1, 0}, 1, null);
            case BSHD -> nested(extent, new int[] {3, 1, 2, 0}, 1, null);
            case INTERLEAVED -> nested(extent, new int[] {3, 2, 1, 0}, 2, null);
            case PADDED, OFF_HEAP_PADDED -> nested(extent, randomOrder(rnd), 1, rnd);
        };
        long elements = 1;
        for (int i = 0; i < 4; i++) {
            elements += (long) (extent[i] - 1) * strides[i];
        }
        long bytes = elements * dtype.byteSize();
        MemorySegment memory;
        if (this == BHSD && dtype == DType.F32) {
            return poisoned(Tensor.of(new float[(int) elements], b, h, s, d));
        } else if (this == BSHD && dtype == DType.F32) {
            return poisoned(Tensor.ofBshd(new float[(int) elements], b, s, h, d));
        } else if (this == OFF_HEAP || this == OFF_HEAP_PADDED) {
            memory = arena.allocate(bytes, 64);
        } else if (dtype == DType.F32) {
            memory = MemorySegment.ofArray(new float[(int) elements]);
        } else {
            memory = MemorySegment.ofArray(new short[(int) elements]);
        }
        memory.fill((byte) 0xFF);
        return Tensor.of(memory, dtype, new long[] {b, h, s, d}, strides);
    }

    private static Tensor poisoned(Tensor t) {
        t.memory().fill((byte) 0xFF);
        return t;
    }

    /** Dimension order, innermost first; half the time the head dim stays innermost, as in real buffers. */
    private static int[] randomOrder(SplittableRandom rnd) {
        int[] order = {3, 2, 1, 0};
        int from = rnd.nextBoolean() ? 1 : 0;
        for (int i = order.length - 1; i > from; i--) {
            int j = from + rnd.nextInt(i - from + 1);
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        return order;
    }

    /**
     * Strides for dimensions nested in {@code order} (innermost first), the innermost with stride
     * {@code inner}; with {@code rnd}, each outer stride leaves a gap of up to 3 elements.
     */
    private static long[] nested(int[] extent, int[] order, long inner, SplittableRandom rnd) {
        long[] strides = new long[4];
        long step = inner;
        for (int dim : order) {
            strides[dim] = step;
            step = step * extent[dim] + (rnd == null ? 0 : rnd.nextInt(4));
        }
        return strides;
    }

    /** Which elements of {@code t}'s memory belong to the view (the rest are gaps). */
    public static boolean[] logicalElements(Tensor t) {
        int size = t.dtype().byteSize();
        boolean[] logical = new boolean[(int) (t.memory().byteSize() / size)];
        long[] st = t.strides();
        for (int b = 0; b < t.batch(); b++) {
            for (int h = 0; h < t.heads(); h++) {
                for (int s = 0; s < t.seqLen(); s++) {
                    for (int d = 0; d < t.headDim(); d++) {
                        logical[(int) (b * st[0] + h * st[1] + s * st[2] + d * st[3])] = true;
                    }
                }
            }
        }
        return logical;
    }

    /** The index of the first gap byte of {@code t} that differs from {@code before}, or -1. */
    public static long firstChangedGap(Tensor t, byte[] before) {
        boolean[] logical = logicalElements(t);
        byte[] now = t.memory().toArray(ValueLayout.JAVA_BYTE);
        int size = t.dtype().byteSize();
        for (int i = 0; i < now.length; i++) {
            if (!logical[i / size] && now[i] != before[i]) {
                return i;
            }
        }
        return -1;
    }
}
