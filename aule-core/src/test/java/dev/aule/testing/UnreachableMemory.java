package dev.aule.testing;

import dev.aule.DType;
import dev.aule.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;

/**
 * Tensors over memory the calling thread cannot touch: memory of an arena already closed, or of a
 * confined arena owned by another thread ({@link OtherThread}). Calls must reject them before
 * writing anything.
 */
public final class UnreachableMemory {
    private UnreachableMemory() {}

    /** A contiguous F32 tensor shaped like {@code like}, over memory of an arena that is already closed. */
    public static Tensor closed(Tensor like) {
        long[] shape = like.shape();
        MemorySegment memory;
        try (Arena arena = Arena.ofConfined()) {
            memory = arena.allocate(bytes(shape), 64);
        }
        return Tensor.of(memory, DType.F32, shape, contiguous(shape));
    }

    /** Memory of a confined arena owned by a thread of its own, which keeps it open until {@link #close()}. */
    public static final class OtherThread implements AutoCloseable {
        private final CountDownLatch done = new CountDownLatch(1);
        private final Thread owner;
        private final MemorySegment memory;
        private long used;

        /**
         * Starts the owner thread with {@code bytes} bytes of confined memory.
         *
         * @param bytes the memory to hold
         */
        public OtherThread(long bytes) {
            CompletableFuture<MemorySegment> allocated = new CompletableFuture<>();
            owner = Thread.ofPlatform().daemon().name("memory-owner").start(() -> {
                try (Arena arena = Arena.ofConfined()) {
                    allocated.complete(arena.allocate(bytes, 64));
                    done.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
            memory = allocated.join();
        }

        /** A contiguous F32 tensor shaped like {@code like}, over the next unused bytes of this memory. */
        public Tensor tensor(Tensor like) {
            long[] shape = like.shape();
            long size = bytes(shape);
            MemorySegment slice = memory.asSlice(used, size);
            used += (size + 63) / 64 * 64;
            return Tensor.of(slice, DType.F32, shape, contiguous(shape));
        }

        @Override
        public void close() throws InterruptedException {
            done.countDown();
            owner.join();
        }
    }

    private static long bytes(long[] shape) {
        return shape[0] * shape[1] * shape[2] * shape[3] * Float.BYTES;
    }

    private static long[] contiguous(long[] shape) {
        return new long[] {shape[1] * shape[2] * shape[3], shape[2] * shape[3], shape[3], 1};
    }
}
