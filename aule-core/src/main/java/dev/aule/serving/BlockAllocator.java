package dev.aule.serving;

/**
 * The blocks of a {@link PagedKvCache} pool: a reference count per block (0 = free) and where a
 * sequence's next block goes. Placement keeps each sequence's blocks adjacent where it can, so
 * that its keys lie in long runs that the attention kernel reads with one copy per run: the next
 * block of a sequence is the one right after its last when that is free; otherwise (and for a
 * sequence's first block) it is the middle of the longest free run, which leaves room on both
 * sides and spreads sequences that start together over the pool instead of interleaving them.
 */
final class BlockAllocator {
    private final int[] refCount;
    private int free;

    BlockAllocator(int blocks) {
        this.refCount = new int[blocks];
        this.free = blocks;
    }

    int total() {
        return refCount.length;
    }

    int free() {
        return free;
    }

    int references(int block) {
        return refCount[block];
    }

    /** One more sequence shares {@code block}. */
    void retain(int block) {
        refCount[block]++;
    }

    /** One sequence lets go of {@code block}; it is free again when none holds it. */
    void release(int block) {
        if (--refCount[block] == 0) {
            free++;
        }
    }

    /**
     * Takes a free block with one reference: the block after {@code previous} (the sequence's last
     * block, or -1 for none) when free, else the middle of the longest free run. At least one block
     * must be free.
     */
    int take(int previous) {
        int block = previous >= 0 && previous + 1 < refCount.length && refCount[previous + 1] == 0
                ? previous + 1
                : middleOfLongestFreeRun();
        refCount[block] = 1;
        free--;
        return block;
    }

    private int middleOfLongestFreeRun() {
        int bestStart = -1;
        int bestLength = 0;
        for (int i = 0; i < refCount.length; ) {
            if (refCount[i] != 0) {
                i++;
                continue;
            }
            int start = i;
            while (i < refCount.length && refCount[i] == 0) {
                i++;
            }
            if (i - start > bestLength) {
                bestStart = start;
                bestLength = i - start;
            }
        }
        if (bestStart < 0) {
            throw new IllegalStateException("no free block; callers check free() first");
        }
        // A run at the pool's start has nothing before it to leave room for.
        return bestStart == 0 ? 0 : bestStart + bestLength / 2;
    }
}
