package dev.aule.vulkan;

import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The pool's bookkeeping on a fake heap of host memory: no device needed. */
class MemoryPoolTest {
    private static final long KIB = 1024;

    /** A heap of {@code capacity} bytes: allocations are host segments, out of memory past the capacity. */
    private static final class FakeHeap implements MemoryPool.Backing {
        private final Arena arena = Arena.ofShared();
        private final long capacity;
        private final boolean mapped;
        private final Map<Long, MemorySegment> live = new ConcurrentHashMap<>();
        private final AtomicLong next = new AtomicLong(1);
        private long used;
        int frees;

        FakeHeap(long capacity, boolean mapped) {
            this.capacity = capacity;
            this.mapped = mapped;
        }

        @Override
        public synchronized long allocate(long bytes) {
            if (used + bytes > capacity) {
                return 0;
            }
            used += bytes;
            long handle = next.getAndIncrement();
            live.put(handle, arena.allocate(bytes, 64));
            return handle;
        }

        @Override
        public synchronized void free(long memory) {
            MemorySegment s = live.remove(memory);
            if (s == null) {
                throw new AssertionError("freed an allocation that is not live: " + memory);
            }
            used -= s.byteSize();
            frees++;
        }

        @Override
        public MemorySegment map(long memory, long bytes) {
            return mapped ? live.get(memory) : null;
        }

        @Override
        public String describe() {
            return "a fake heap of " + capacity + " bytes";
        }

        synchronized int liveCount() {
            return live.size();
        }
    }

    @Test
    void rangesAreAlignedAndDisjoint() {
        FakeHeap heap = new FakeHeap(1 << 20, true);
        try (MemoryPool pool = new MemoryPool(heap, 64 * KIB)) {
            MemoryPool.Allocation a = pool.allocate(100, 64);
            MemoryPool.Allocation b = pool.allocate(10, 256);
            MemoryPool.Allocation c = pool.allocate(4, 4096);
            assertEquals(0, a.offset());
            assertEquals(256, b.offset(), "the first multiple of 256 after a's 100 bytes");
            assertEquals(4096, c.offset());
            assertEquals(a.memory(), c.memory(), "one block");
            assertEquals(1, pool.allocations());
            // The padding before b and c stays free, and the rest of the block after c.
            assertEquals(
                    Map.of(100L, 156L, 266L, 4096L - 266, 4100L, 64 * KIB - 4100),
                    pool.freeRanges().getFirst());
            assertEquals(100, a.mapped().byteSize());
            pool.free(b);
            MemoryPool.Allocation d = pool.allocate(150, 4);
            assertEquals(100, d.offset(), "first fit: the lowest range that holds it");
        }
    }

    @Test
    void freedNeighboursCoalesce() {
        FakeHeap heap = new FakeHeap(1 << 20, false);
        try (MemoryPool pool = new MemoryPool(heap, 64 * KIB)) {
            MemoryPool.Allocation a = pool.allocate(1024, 64);
            MemoryPool.Allocation b = pool.allocate(1024, 64);
            MemoryPool.Allocation c = pool.allocate(1024, 64);
            MemoryPool.Allocation keep = pool.allocate(1024, 64);
            pool.free(a);
            pool.free(c);
            assertEquals(
                    Map.of(0L, 1024L, 2048L, 1024L, 4096L, 64 * KIB - 4096),
                    pool.freeRanges().getFirst());
            pool.free(b); // merges with both neighbours
            assertEquals(
                    Map.of(0L, 3072L, 4096L, 64 * KIB - 4096), pool.freeRanges().getFirst());
            MemoryPool.Allocation big = pool.allocate(3072, 64);
            assertEquals(0, big.offset(), "the merged range holds what none of its parts could");
            pool.free(big);
            pool.free(keep);
            assertEquals(Map.of(0L, 64 * KIB), pool.freeRanges().getFirst(), "back to one free range");
            assertNull(keep.mapped(), "not host-visible: no view");
        }
    }

    @Test
    void oneEmptyBlockIsKeptAndOthersAreFreed() {
        FakeHeap heap = new FakeHeap(1 << 20, false);
        try (MemoryPool pool = new MemoryPool(heap, 64 * KIB)) {
            MemoryPool.Allocation a = pool.allocate(48 * KIB, 64);
            MemoryPool.Allocation b = pool.allocate(48 * KIB, 64); // does not fit beside a: a second block
            MemoryPool.Allocation c = pool.allocate(48 * KIB, 64);
            assertNotEquals(a.memory(), b.memory());
            assertEquals(3, pool.allocations());
            pool.free(a);
            assertEquals(3, pool.liveAllocations(), "the first empty block is kept");
            pool.free(b);
            assertEquals(2, pool.liveAllocations(), "a second empty block is freed");
            pool.free(c);
            assertEquals(1, pool.liveAllocations());
            assertEquals(1, heap.liveCount());
            // Reuse: a warm pool allocates nothing more for calls that fit its kept block.
            for (int i = 0; i < 10; i++) {
                MemoryPool.Allocation x = pool.allocate(20 * KIB, 64);
                MemoryPool.Allocation y = pool.allocate(20 * KIB, 64);
                pool.free(y);
                pool.free(x);
            }
            assertEquals(3, pool.allocations(), "no new backing allocation once warm");
        }
        assertEquals(0, heap.liveCount(), "close frees the kept block");
    }

    @Test
    void aRequestLargerThanABlockGetsItsOwnAllocation() {
        FakeHeap heap = new FakeHeap(1 << 20, true);
        try (MemoryPool pool = new MemoryPool(heap, 64 * KIB)) {
            MemoryPool.Allocation small = pool.allocate(64, 64);
            MemoryPool.Allocation large = pool.allocate(200 * KIB, 64);
            assertTrue(large.dedicated());
            assertFalse(small.dedicated());
            assertEquals(0, large.offset());
            assertEquals(200 * KIB, large.mapped().byteSize());
            assertEquals(2, heap.liveCount());
            pool.free(large);
            assertEquals(1, heap.liveCount(), "a dedicated allocation is freed at once");
            assertEquals(1, pool.liveAllocations());
            pool.free(small);
        }
    }

    @Test
    void outOfMemoryIsAVulkanExceptionAndThePoolStaysUsable() {
        // Room for two 64 KiB blocks and 32 KiB more.
        FakeHeap heap = new FakeHeap(160 * KIB, false);
        try (MemoryPool pool = new MemoryPool(heap, 64 * KIB)) {
            MemoryPool.Allocation a = pool.allocate(60 * KIB, 64);
            MemoryPool.Allocation b = pool.allocate(60 * KIB, 64);
            // No room for a third block, but the request alone fits what is left of the heap.
            MemoryPool.Allocation c = pool.allocate(30 * KIB, 64);
            assertTrue(c.dedicated());
            VulkanException e = assertThrows(VulkanException.class, () -> pool.allocate(60 * KIB, 64));
            assertTrue(e.getMessage().contains("out of device memory"), e.getMessage());
            assertTrue(e.getMessage().contains(String.valueOf(60 * KIB)), e.getMessage());
            assertThrows(VulkanException.class, () -> pool.allocate(1 << 20, 64), "over the heap: dedicated, refused");
            assertEquals(3, heap.liveCount(), "a refused request holds nothing");
            pool.free(b);
            MemoryPool.Allocation d = pool.allocate(60 * KIB, 64);
            assertEquals(b.offset(), d.offset(), "freed memory serves the next request");
            pool.free(a);
            pool.free(c);
            pool.free(d);
        }
        assertEquals(0, heap.liveCount());
    }

    @Test
    void badArgumentsAndDoubleFreesAreRefused() {
        FakeHeap heap = new FakeHeap(1 << 20, false);
        try (MemoryPool pool = new MemoryPool(heap, 64 * KIB)) {
            assertThrows(IllegalArgumentException.class, () -> pool.allocate(0, 64));
            assertThrows(IllegalArgumentException.class, () -> pool.allocate(16, 48));
            MemoryPool.Allocation a = pool.allocate(16, 64);
            pool.free(a);
            assertThrows(IllegalStateException.class, () -> pool.free(a));
            assertEquals(Map.of(0L, 64 * KIB), pool.freeRanges().getFirst(), "the second free changed nothing");
        }
        assertThrows(IllegalArgumentException.class, () -> new MemoryPool(heap, 0));
    }

    @Test
    void blockSizeIsCappedAndASixteenthOfASmallHeap() {
        assertEquals(64L << 20, MemoryPool.blockBytes(16L << 30));
        assertEquals(32L << 20, MemoryPool.blockBytes(512L << 20));
        assertEquals(64L << 10, MemoryPool.blockBytes(1L << 20), "never below 64 KiB");
    }

    /**
     * Threads allocate, fill their ranges with their own pattern, check it and free, at random: a range handed to
     * two owners at once shows as a pattern overwritten. At the end everything is free and coalesced.
     */
    @Test
    void concurrentAllocationsNeverOverlap() throws Exception {
        FakeHeap heap = new FakeHeap(64L << 20, true);
        try (MemoryPool pool = new MemoryPool(heap, 256 * KIB);
                ExecutorService threads = Executors.newFixedThreadPool(4)) {
            List<Future<?>> done = new ArrayList<>();
            for (int t = 0; t < 4; t++) {
                long seed = t;
                done.add(threads.submit(() -> {
                    SplittableRandom rnd = new SplittableRandom(seed);
                    Map<MemoryPool.Allocation, Byte> mine = new HashMap<>();
                    for (int i = 0; i < 2000; i++) {
                        if (mine.size() < 8 && rnd.nextInt(3) != 0) {
                            long bytes = 1 + rnd.nextInt(rnd.nextInt(10) == 0 ? 300_000 : 20_000);
                            MemoryPool.Allocation a = pool.allocate(bytes, 1L << rnd.nextInt(9));
                            byte mark = (byte) rnd.nextInt(256);
                            a.mapped().fill(mark);
                            mine.put(a, mark);
                        } else if (!mine.isEmpty()) {
                            MemoryPool.Allocation a = mine.keySet().iterator().next();
                            check(a, mine.remove(a));
                            pool.free(a);
                        }
                    }
                    mine.forEach((a, mark) -> {
                        check(a, mark);
                        pool.free(a);
                    });
                    return null;
                }));
            }
            for (Future<?> f : done) {
                f.get();
            }
            assertEquals(1, pool.liveAllocations(), "one empty block kept");
            assertEquals(Map.of(0L, 256 * KIB), pool.freeRanges().getFirst());
        }
        assertEquals(0, heap.liveCount());
    }

    private static void check(MemoryPool.Allocation a, byte mark) {
        MemorySegment m = a.mapped();
        for (long i = 0; i < m.byteSize(); i += 61) {
            if (m.get(ValueLayout.JAVA_BYTE, i) != mark) {
                throw new AssertionError("range at " + a.offset() + " was written by another owner");
            }
        }
        if (m.get(ValueLayout.JAVA_BYTE, m.byteSize() - 1) != mark) {
            throw new AssertionError("the last byte of the range at " + a.offset() + " was written by another owner");
        }
    }
}
