package dev.aule.cpu;

import dev.aule.spi.QuantizedKv;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link QuantRows#abnormalRows}: the cache's row flags of a kernel run, bit for bit, at every start slot and length a
 * run may have, for block sizes below, at and above a word and runs that cross from one word of a block to the next.
 */
class QuantRowsFlagsTest {
    @Test
    void aRunsFlagsAreItsSlotsBits() {
        SplittableRandom rnd = new SplittableRandom(17);
        int heads = 3;
        int numBlocks = 5;
        for (int blockSize : new int[] {1, 5, 63, 64, 65, 80, 128, 200}) {
            int words = QuantizedKv.flagWords(blockSize);
            long[] flags = new long[heads * numBlocks * words];
            for (int i = 0; i < flags.length; i++) {
                flags[i] = rnd.nextLong() & rnd.nextLong(); // about a quarter of the bits set
            }
            int[] table = {3, 0, 4, 1};
            QuantRows rows = new QuantRows(
                    QuantizedKv.Format.FP8_E4M3,
                    true,
                    new byte[heads * numBlocks * blockSize],
                    new float[heads * numBlocks],
                    flags,
                    table,
                    numBlocks,
                    blockSize,
                    1);
            assertTrue(rows.hasRowFlags());
            for (int head = 0; head < heads; head++) {
                for (int j = 0; j < table.length * blockSize; j++) {
                    int longest = rows.runLength(j, 64);
                    for (int count = 1; count <= longest; count++) {
                        long want = 0;
                        for (int i = 0; i < count; i++) {
                            int slot = (j + i) % blockSize;
                            int word = (head * numBlocks + table[(j + i) / blockSize]) * words + slot / 64;
                            if ((flags[word] & 1L << (slot % 64)) != 0) {
                                want |= 1L << i;
                            }
                        }
                        assertEquals(
                                want,
                                rows.abnormalRows(head, j, count),
                                "blocks of " + blockSize + ", head " + head + ", rows " + j + " + " + count);
                    }
                }
            }
        }
        assertFalse(new QuantRows(
                        QuantizedKv.Format.FP8_E5M2, false, new byte[4], new float[1], null, new int[] {0}, 1, 4, 1)
                .hasRowFlags());
    }
}
