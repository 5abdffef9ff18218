package dev.aule;

import dev.aule.spi.Accuracy;
import dev.aule.testing.Tensors;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Tensors over native memory from each kind of {@link Arena}. The property tests already use shared
 * arenas; here every kind, including confined ones, on a call big enough to be spread over workers.
 */
class NativeMemoryTest {
    // Large enough that the CPU backend spreads the call over its pool: 8 heads x 4 row tiles.
    private static final int B = 1;
    private static final int H = 8;
    private static final int S = 256;
    private static final int D = 32;

    @ParameterizedTest(name = "{0}")
    @MethodSource("dev.aule.testing.BackendNames#available")
    void sharedArenaSegmentsWork(String backend) {
        try (Arena arena = Arena.ofShared()) {
            checkAgainstHeap(backend, bytes -> arena.allocate(bytes, 16));
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("dev.aule.testing.BackendNames#available")
    void automaticArenaSegmentsWork(String backend) {
        Arena arena = Arena.ofAuto();
        checkAgainstHeap(backend, bytes -> arena.allocate(bytes, 16));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("dev.aule.testing.BackendNames#available")
    void globalArenaSegmentsWork(String backend) {
        checkAgainstHeap(backend, bytes -> Arena.global().allocate(bytes, 16));
    }

    /**
     * A confined arena is the natural choice for one call's buffers, and the contract takes "any
     * MemorySegment"; only the owner thread may touch such memory, so the pool threads must not.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("dev.aule.testing.BackendNames#available")
    void confinedArenaSegmentsWork(String backend) {
        try (Arena arena = Arena.ofConfined()) {
            checkAgainstHeap(backend, bytes -> arena.allocate(bytes, 16));
        }
    }

    /** Runs a forward on tensors in memory from {@code allocator} and compares with the same call on heap arrays. */
    private static void checkAgainstHeap(String backend, Function<Long, MemorySegment> allocator) {
        SplittableRandom rnd = new SplittableRandom(17);
        Tensor q = Tensors.random(rnd, DType.F32, B, H, S, D);
        Tensor k = Tensors.random(rnd, DType.F16, B, H, S, D);
        Tensor v = Tensors.random(rnd, DType.BF16, B, H, S, D);
        Tensor nq = copyTo(q, allocator);
        Tensor nk = copyTo(k, allocator);
        Tensor nv = copyTo(v, allocator);
        Tensor nOut = Tensor.of(allocator.apply((long) B * H * S * D * 4), DType.F32, q.shape(), q.strides());
        Tensor nLse = Tensor.of(
                allocator.apply((long) B * H * S * 4), DType.F32, new long[] {B, H, S, 1}, new long[] {H * S, S, 1, 1});
        nOut.fill(Float.NaN);
        nLse.fill(Float.NaN);
        AttentionOptions options = AttentionOptions.builder().causal(true).build();
        Backends.get(backend).forward(nq, nk, nv, nOut, nLse, options);

        Tensor out = Tensor.allocate(DType.F32, B, H, S, D);
        Tensor lse = Tensor.allocate(DType.F32, B, H, S, 1);
        Backends.get(backend).forward(q, k, v, out, lse, options);
        // Not bitwise: the vector path's last bit depends on JIT state (ReproducibilityTest). Reading a
        // wrong element would be off by far more than 1e-6.
        double outDiff = Accuracy.relativeError(nOut, out);
        double lseDiff = Accuracy.relativeError(nLse, lse);
        assertTrue(outDiff < 1e-6, () -> backend + ": out in native memory differs by " + outDiff);
        assertTrue(lseDiff < 1e-6, () -> backend + ": lse in native memory differs by " + lseDiff);
    }

    private static Tensor copyTo(Tensor t, Function<Long, MemorySegment> allocator) {
        MemorySegment memory = allocator.apply(t.elementCount() * t.dtype().byteSize());
        memory.copyFrom(t.memory());
        return Tensor.of(memory, t.dtype(), t.shape(), t.strides());
    }
}
