package dev.aule.vulkan;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * Device memory of one memory type, sub-allocated to buffers from large blocks so that a call's buffers cost no
 * {@code vkAllocateMemory} once the pool is warm. A request larger than a block gets a dedicated allocation of
 * its own. Thread-safe. Made by {@link VulkanDevice} (one per memory type in use), closed with the device.
 *
 * <p>Pooled memory is not zeroed: what a freed buffer held is what the next one on its bytes starts with.
 */
final class MemoryPool implements AutoCloseable {
    /*
     * Invariants (maintainers):
     *  - blocks holds the shared blocks; dedicated holds the live dedicated allocations. Every backing allocation
     *    the pool made and has not freed is in exactly one of them; close() frees them all.
     *  - A block's free map (offset -> length) holds its free ranges, disjoint, never adjacent (free() merges a
     *    released range with its neighbours), and together with the live allocations they tile the block exactly:
     *    an allocation's alignment padding stays in the free map, so an allocation is [offset, offset + size).
     *  - At most one shared block is empty at any time: the one kept for reuse. free() releases any other.
     *  - Only buffers are pooled (linear resources), so bufferImageGranularity never applies between neighbours.
     *  - The lock is this pool's monitor: every Backing call runs under it, which also serialises vkMapMemory on a
     *    block (Vulkan requires the memory object to be externally synchronised).
     */

    /** The most a shared block holds. */
    static final long MAX_BLOCK_BYTES = 64L << 20;

    /** Where the pool gets its memory: {@code vkAllocateMemory} of one type ({@link VulkanMemory}), or a test's fake. */
    interface Backing {
        /**
         * @return a new allocation's handle, or {@code 0} when the device (or the heap) has no memory left for it
         * @throws VulkanException on another failure
         */
        long allocate(long bytes);

        /** Frees an allocation {@link #allocate} returned. */
        void free(long memory);

        /** {@return all {@code bytes} of the allocation mapped for the host, or null when the type is not host-visible} */
        MemorySegment map(long memory, long bytes);

        /** {@return what the memory is, for messages (the device and memory type)} */
        String describe();
    }

    /** A range of a block handed to one buffer; freed once by {@link #free}. */
    static final class Allocation {
        private final Block block;
        private final long offset;
        private final long size;
        private boolean freed;

        private Allocation(Block block, long offset, long size) {
            this.block = block;
            this.offset = offset;
            this.size = size;
        }

        /** {@return the {@code VkDeviceMemory} to bind} */
        long memory() {
            return block.memory;
        }

        /** {@return where the range starts in {@link #memory()}} */
        long offset() {
            return offset;
        }

        /** {@return bytes of the range} */
        long size() {
            return size;
        }

        /** {@return the host's view of the range, or null when the memory is not host-visible} */
        MemorySegment mapped() {
            return block.mapped == null ? null : block.mapped.asSlice(offset, size);
        }

        /** {@return whether it has a block of its own} */
        boolean dedicated() {
            return block.dedicated;
        }
    }

    private static final class Block {
        final long memory;
        final long size;
        final MemorySegment mapped;
        final boolean dedicated;
        final TreeMap<Long, Long> free = new TreeMap<>();
        long used;

        Block(long memory, long size, MemorySegment mapped, boolean dedicated) {
            this.memory = memory;
            this.size = size;
            this.mapped = mapped;
            this.dedicated = dedicated;
            if (!dedicated) {
                free.put(0L, size);
            }
        }

        /** First fit: the lowest aligned offset where {@code bytes} fit, taken out of the free map; -1 if none. */
        long take(long bytes, long alignment) {
            for (Map.Entry<Long, Long> range : free.entrySet()) {
                long start = range.getKey();
                long end = start + range.getValue();
                long at = alignUp(start, alignment);
                if (at + bytes > end) {
                    continue;
                }
                free.remove(start);
                if (at > start) {
                    free.put(start, at - start); // alignment padding stays free
                }
                if (at + bytes < end) {
                    free.put(at + bytes, end - at - bytes);
                }
                used += bytes;
                return at;
            }
            return -1;
        }

        /** Gives a range back, merged with the free ranges just below and just above it. */
        void release(long offset, long bytes) {
            long start = offset;
            long end = offset + bytes;
            Map.Entry<Long, Long> below = free.floorEntry(offset);
            if (below != null && below.getKey() + below.getValue() == offset) {
                start = below.getKey();
                free.remove(below.getKey());
            }
            Long aboveLength = free.remove(end);
            if (aboveLength != null) {
                end += aboveLength;
            }
            free.put(start, end - start);
            used -= bytes;
        }

        boolean empty() {
            return used == 0;
        }
    }

    private final Backing backing;
    private final long blockBytes;
    private final List<Block> blocks = new ArrayList<>();
    private final Set<Block> dedicated = Collections.newSetFromMap(new IdentityHashMap<>());
    private long allocations;
    private boolean closed;

    /**
     * @param backing where blocks come from
     * @param blockBytes bytes of a shared block (see {@link #blockBytes(long)}); larger requests get their own
     */
    MemoryPool(Backing backing, long blockBytes) {
        if (blockBytes <= 0) {
            throw new IllegalArgumentException("blockBytes: must be positive, got " + blockBytes);
        }
        this.backing = backing;
        this.blockBytes = blockBytes;
    }

    /** Block size for a heap of {@code heapBytes}: {@link #MAX_BLOCK_BYTES}, or a sixteenth of a smaller heap. */
    static long blockBytes(long heapBytes) {
        long sixteenth = (heapBytes / 16) & -(64L << 10); // whole 64 KiB
        return Math.max(64L << 10, Math.min(MAX_BLOCK_BYTES, sixteenth));
    }

    /**
     * A range of {@code bytes} at a multiple of {@code alignment} (a power of two, as Vulkan's memory requirements
     * give it).
     *
     * @throws VulkanException when the device has no memory left for it; the pool stays usable
     */
    synchronized Allocation allocate(long bytes, long alignment) {
        if (bytes <= 0) {
            throw new IllegalArgumentException("bytes: must be positive, got " + bytes);
        }
        if (alignment <= 0 || Long.bitCount(alignment) != 1) {
            throw new IllegalArgumentException("alignment: must be a power of two, got " + alignment);
        }
        if (closed) {
            throw new IllegalStateException("the memory pool of " + backing.describe() + " was closed");
        }
        if (bytes > blockBytes) {
            return dedicatedAllocation(bytes);
        }
        for (Block b : blocks) {
            long at = b.take(bytes, alignment);
            if (at >= 0) {
                return new Allocation(b, at, bytes);
            }
        }
        long memory = backing.allocate(blockBytes);
        if (memory == 0) {
            // No room for a whole block: the request alone may still fit.
            return dedicatedAllocation(bytes);
        }
        allocations++;
        Block b = new Block(memory, blockBytes, map(memory, blockBytes), false);
        blocks.add(b);
        return new Allocation(b, b.take(bytes, alignment), bytes);
    }

    private Allocation dedicatedAllocation(long bytes) {
        long memory = backing.allocate(bytes);
        if (memory == 0) {
            throw new VulkanException(String.format(
                    Locale.ROOT,
                    "out of device memory on %s allocating %d bytes (this pool holds %.1f MiB in %d blocks, %.1f MiB"
                            + " of them free but not in one piece); free device tensors or use smaller calls",
                    backing.describe(),
                    bytes,
                    heldBytes() / 1048576.0,
                    blocks.size() + dedicated.size(),
                    freeBytes() / 1048576.0));
        }
        allocations++;
        Block b = new Block(memory, bytes, map(memory, bytes), true);
        dedicated.add(b);
        return new Allocation(b, 0, bytes);
    }

    private MemorySegment map(long memory, long bytes) {
        try {
            return backing.map(memory, bytes);
        } catch (RuntimeException e) {
            backing.free(memory);
            throw e;
        }
    }

    /**
     * Gives {@code a}'s range back: merged with free neighbours; a block left empty is kept for reuse if no other
     * empty block is, else freed; a dedicated allocation is freed. Only once the device no longer uses it.
     *
     * @throws IllegalStateException when {@code a} was freed already
     */
    synchronized void free(Allocation a) {
        if (a.freed) {
            throw new IllegalStateException("a memory range of " + backing.describe() + " freed twice");
        }
        a.freed = true;
        if (closed) {
            return; // close() freed its memory already
        }
        Block b = a.block;
        if (b.dedicated) {
            dedicated.remove(b);
            backing.free(b.memory);
            return;
        }
        b.release(a.offset, a.size);
        if (b.empty() && blocks.stream().anyMatch(other -> other != b && other.empty())) {
            blocks.remove(b);
            backing.free(b.memory);
        }
    }

    /** {@return backing allocations made so far (each a {@code vkAllocateMemory}), freed or not} */
    synchronized long allocations() {
        return allocations;
    }

    /** {@return backing allocations held now: shared blocks and dedicated ones} */
    synchronized int liveAllocations() {
        return blocks.size() + dedicated.size();
    }

    /** {@return the free ranges of each shared block, in order (tests)} */
    synchronized List<Map<Long, Long>> freeRanges() {
        return blocks.stream().<Map<Long, Long>>map(b -> new TreeMap<>(b.free)).toList();
    }

    private long heldBytes() {
        return blocks.stream().mapToLong(b -> b.size).sum()
                + dedicated.stream().mapToLong(b -> b.size).sum();
    }

    private long freeBytes() {
        return blocks.stream().mapToLong(b -> b.size - b.used).sum();
    }

    /** Frees every backing allocation, in use or not: only once the device runs nothing (device close). */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (Block b : blocks) {
            backing.free(b.memory);
        }
        for (Block b : dedicated) {
            backing.free(b.memory);
        }
        blocks.clear();
        dedicated.clear();
    }

    static long alignUp(long value, long alignment) {
        return (value + alignment - 1) & -alignment;
    }
}
