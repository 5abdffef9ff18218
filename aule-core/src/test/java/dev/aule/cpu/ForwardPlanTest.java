package dev.aule.cpu;

import dev.aule.spi.Visibility;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * A sequence's plan follows its shape alone: decode key ranges split into parts of at most
 * {@link TileConfig#SPLIT_KEYS} keys (so long contexts still spread over the cores), bounded in count and
 * in partial-state memory; sequences with enough tiles are not split.
 */
class ForwardPlanTest {
    private static final int D = 128;

    @Test
    void decodeSplitsFollowTheContextLength() {
        int[][] expected = {{1, 1}, {1024, 1}, {1025, 2}, {4096, 4}, {8192, 8}, {100_000, 98}, {1 << 20, 256}};
        for (int[] e : expected) {
            // One query per sequence, GQA 32:8: 4 rows per KV head, one tile each.
            ForwardPlan plan = ForwardPlan.of(4, 8, D, D, new Visibility(1, e[0], -1, 0));
            assertEquals(1, plan.tiles(), "context " + e[0]);
            assertEquals(e[1], plan.splits(), "context " + e[0]);
        }
    }

    @Test
    void aWindowSplitsOnlyTheKeysARowSees() {
        ForwardPlan plan = ForwardPlan.of(4, 8, D, D, new Visibility(1, 100_000, 1500, 0));
        assertEquals(2, plan.splits());
    }

    @Test
    void sequencesWithEnoughTilesAreNotSplit() {
        // 2048 queries x GQA 4 on 8 KV heads: 32 tiles of 256 rows per head.
        ForwardPlan plan = ForwardPlan.of(8192, 8, D, D, new Visibility(2048, 100_000, -1, 0));
        assertEquals(256, plan.tileRows());
        assertEquals(32, plan.tiles());
        assertEquals(1, plan.splits());
    }

    @Test
    void fewTilesAreHalvedThenSplit() {
        // A prefill chunk of 64 queries x GQA 4 on 8 KV heads against 8192 keys: 256 rows per head, halved to
        // 2 tiles of 128 (16 in all), each key range split in 8.
        ForwardPlan chunk = ForwardPlan.of(256, 8, D, D, new Visibility(64, 8192, -1, 0));
        assertEquals(128, chunk.tileRows());
        assertEquals(2, chunk.tiles());
        assertEquals(8, chunk.splits());
        // One KV head: 16 tiles of the fewest rows, split along 100000 keys as far as the partial budget allows
        // (16 tiles x 64 rows x 130 floats: 31 parts in 16 MiB).
        ForwardPlan lone = ForwardPlan.of(1024, 1, D, D, new Visibility(1024, 100_000, -1, 0));
        assertEquals(TileConfig.MIN_TILE_ROWS, lone.tileRows());
        assertEquals(16, lone.tiles());
        assertEquals(31, lone.splits());
    }

    @Test
    void partialStatesStayWithinTheirBudget() {
        // 31 tiles of 64 rows by 512 value floats: about 4 MiB of partial state per part.
        int dvp = 512;
        ForwardPlan plan = ForwardPlan.of(31 * 64, 1, dvp, dvp, new Visibility(31 * 64, 1 << 20, -1, -1));
        assertEquals(31, plan.tiles());
        long partBytes = (long) plan.tiles() * plan.tileRows() * (dvp + 2) * Float.BYTES;
        assertEquals(TileConfig.SPLIT_PARTIAL_BYTES / partBytes, plan.splits());
        assertEquals(4, plan.splits());
    }
}
