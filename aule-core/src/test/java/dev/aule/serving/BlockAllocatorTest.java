package dev.aule.serving;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Placement: a sequence's blocks stay adjacent; sequences that start together get runs of their own. */
class BlockAllocatorTest {

    @Test
    void aGrowingSequenceTakesAdjacentBlocks() {
        BlockAllocator blocks = new BlockAllocator(64);
        int previous = blocks.take(-1);
        for (int i = 0; i < 20; i++) {
            int next = blocks.take(previous);
            assertEquals(previous + 1, next);
            previous = next;
        }
        assertEquals(64 - 21, blocks.free());
    }

    @Test
    void sequencesGrowingInTurnAreNotInterleaved() {
        BlockAllocator blocks = new BlockAllocator(256);
        int[] last = new int[8];
        java.util.Arrays.fill(last, -1);
        int[] runs = new int[8];
        for (int step = 0; step < 24; step++) {
            for (int s = 0; s < 8; s++) {
                int block = blocks.take(last[s]);
                if (block != last[s] + 1 || last[s] < 0) {
                    runs[s]++;
                }
                last[s] = block;
            }
        }
        for (int s = 0; s < 8; s++) {
            assertTrue(runs[s] <= 2, "sequence " + s + " split into " + runs[s] + " runs");
        }
    }

    @Test
    void releasedBlocksAreTakenAgainAndCountsAreKept() {
        BlockAllocator blocks = new BlockAllocator(3);
        int a = blocks.take(-1);
        int b = blocks.take(a);
        int c = blocks.take(b);
        assertEquals(0, blocks.free());
        assertThrows(IllegalStateException.class, () -> blocks.take(-1));
        blocks.retain(b);
        blocks.release(b);
        assertEquals(0, blocks.free(), "still shared once");
        blocks.release(b);
        assertEquals(1, blocks.free());
        assertEquals(b, blocks.take(c));
        assertNotEquals(a, c);
    }
}
