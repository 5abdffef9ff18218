package dev.aule.fuzz;

import dev.aule.DType;
import dev.aule.Tensor;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * Fuzzes {@code Tensor.of(MemorySegment, ...)}, {@code Tensor.of(float[], ...)} and {@code Tensor.ofBshd}
 * with hostile shapes, strides and memory (extents and strides near {@link Integer#MAX_VALUE} and
 * {@link Long#MAX_VALUE}, products that overflow a long, too little memory, closed arenas): each call either
 * throws an {@link IllegalArgumentException} naming {@code shape}, {@code strides}, {@code memory} or
 * {@code data}, or builds a view whose every addressed element (the first and the last) can be read and written.
 */
class TensorFuzzTest {
    private static final long[] EXTENTS = {
        1, 2, 3, 7, 64, 0, -1, Integer.MAX_VALUE, Integer.MAX_VALUE + 1L, 1L << 40, Long.MAX_VALUE, Long.MIN_VALUE
    };
    private static final long[] STRIDES = {
        1, 0, 2, 64, 7, -1, Integer.MAX_VALUE, 1L << 32, Long.MAX_VALUE / 2, Long.MAX_VALUE, Long.MIN_VALUE
    };

    @Test
    void viewsAreValidOrRejectedNamingTheArgument() {
        Fuzz.check("Tensor.of", 3000, TensorFuzzTest::viewCase);
    }

    static void viewCase(Choices c) {
        long[] shape = new long[4];
        long[] strides = new long[4];
        for (int i = 0; i < 4; i++) {
            shape[i] = c.oneIn(3) ? EXTENTS[c.below(EXTENTS.length)] : EXTENTS[c.below(5)];
            strides[i] = c.oneIn(3) ? STRIDES[c.below(STRIDES.length)] : STRIDES[c.below(5)];
        }
        DType dtype = c.note("dtype", Draws.dtype(c));
        int kind = c.note("memory", c.below(4)); // heap, off-heap, closed arena, float[] factories
        long bytes = c.note("bytes", (long) c.pickInt(64, 4096, 0, 1 << 20, 3));
        c.note("shape", Arrays.toString(shape));
        c.note("strides", Arrays.toString(strides));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment memory = switch (kind) {
                case 1 -> arena.allocate(bytes, 8);
                case 2 -> {
                    Arena closed = Arena.ofConfined();
                    MemorySegment m = closed.allocate(bytes, 8);
                    closed.close();
                    yield m;
                }
                default -> MemorySegment.ofArray(new byte[(int) bytes]);
            };
            Tensor t;
            try {
                if (kind == 3) {
                    int[] dims = new int[4];
                    for (int i = 0; i < 4; i++) {
                        dims[i] = (int) shape[i]; // narrowed on purpose: wrapped and negative extents
                    }
                    float[] data = new float[(int) (bytes / 4)];
                    t = c.oneIn(2)
                            ? Tensor.ofBshd(data, dims[0], dims[2], dims[1], dims[3])
                            : Tensor.of(data, dims[0], dims[1], dims[2], dims[3]);
                } else {
                    t = Tensor.of(memory, dtype, shape, strides);
                }
            } catch (IllegalArgumentException e) {
                if (!Contract.names(e.getMessage(), "shape")
                        && !Contract.names(e.getMessage(), "strides")
                        && !Contract.names(e.getMessage(), "memory")
                        && !Contract.names(e.getMessage(), "data")) {
                    throw new AssertionError("rejected without naming shape, strides, memory or data: " + e, e);
                }
                return;
            } catch (Throwable e) {
                throw new AssertionError("threw " + e + " (only IllegalArgumentException is allowed)", e);
            }
            if (kind == 2) {
                return; // a view of dead memory may be built; every call rejects it (ForwardFuzzTest)
            }
            int[] last = {t.batch() - 1, t.heads() - 1, t.seqLen() - 1, t.headDim() - 1};
            try {
                t.set(0, 0, 0, 0, 1.5f);
                t.set(last[0], last[1], last[2], last[3], -2.5f);
                float x = t.get(last[0], last[1], last[2], last[3]);
                if (x != -2.5f) {
                    throw new AssertionError("the last element reads back as " + x);
                }
            } catch (AssertionError e) {
                throw e;
            } catch (Throwable e) {
                throw new AssertionError("built " + t + " whose elements cannot be reached: " + e, e);
            }
        }
    }
}
