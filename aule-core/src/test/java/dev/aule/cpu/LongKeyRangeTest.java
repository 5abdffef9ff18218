package dev.aule.cpu;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Tensor;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Key lengths up to {@code Integer.MAX_VALUE}, the longest a tensor can have (zero-stride keys and values make
 * such a call legal in a few bytes): the splits of a key range cover it exactly, and the key blocks next to the
 * end are all visited. A whole range of that length is 2^31 keys of work, too slow for a test; the split
 * arithmetic is checked directly on it instead.
 */
class LongKeyRangeTest {
    private static final int LONGEST = Integer.MAX_VALUE;

    @Test
    void splitsCoverTheLongestKeyRangeInWholeBlocks() {
        for (int start : new int[] {0, 5, LONGEST - 1000}) {
            for (int splits : new int[] {1, 2, 3, 7, 64, 256}) {
                for (int keyTile : new int[] {16, 32, 64}) {
                    FlashForward.KeyRange range = new FlashForward.KeyRange(start, LONGEST);
                    int covered = start;
                    for (int split = 0; split < splits; split++) {
                        FlashForward.KeyRange part = range.split(split, splits, keyTile);
                        String where = "start " + start + " split " + split + " of " + splits + " keyTile " + keyTile;
                        if (part.start() < part.end()) {
                            assertEquals(covered, part.start(), where);
                            assertEquals(0, (part.start() - start) % keyTile, where + ": whole key blocks");
                            covered = part.end();
                        } else {
                            assertEquals(LONGEST, covered, where + ": only trailing splits may be empty");
                        }
                    }
                    assertEquals(LONGEST, covered, "start " + start + ", " + splits + " splits of keyTile " + keyTile);
                }
            }
        }
    }

    /**
     * One query against {@code 2^31 - 1} copies of one key and value (stride 0 on the key dim), seeing only the
     * last 101 keys (causal, a window of 100 before the diagonal): the key blocks it visits end at the longest
     * legal length, where a block start plus the block size passes {@code 2^31 - 1}. Every visible key weighs the
     * same, so the output is the value row and the log-sum-exp {@code score + ln(101)}.
     */
    @Test
    void zeroStrideKeysUpToTheLongestLengthAreAllSeen() {
        int d = 8;
        int visible = 101;
        float[] qRow = {0.5f, -1f, 0.25f, 2f, 0f, 1f, -0.5f, 0.125f};
        float[] kRow = {1f, 0.5f, -2f, 0.25f, 3f, -1f, 0f, 4f};
        float[] vRow = {0.5f, -0.25f, 2f, 1f, -4f, 0.125f, 8f, -1f};
        Tensor q = Tensor.of(qRow, 1, 1, 1, d);
        Tensor k = Tensor.of(
                MemorySegment.ofArray(kRow), DType.F32, new long[] {1, 1, LONGEST, d}, new long[] {0, 0, 0, 1});
        Tensor v = Tensor.of(
                MemorySegment.ofArray(vRow), DType.F32, new long[] {1, 1, LONGEST, d}, new long[] {0, 0, 0, 1});
        AttentionOptions window =
                AttentionOptions.builder().causal(true).window(visible - 1, 0).build();
        for (TileMath math : new TileMath[] {new VectorTileMath(), new ScalarTileMath()}) {
            Tensor out = Tensor.allocate(DType.F32, 1, 1, 1, d);
            Tensor lse = Tensor.allocate(DType.F32, 1, 1, 1, 1);
            new CpuBackend(math).forward(q, k, v, out, lse, window);
            double score = 0;
            for (int x = 0; x < d; x++) {
                score += (double) qRow[x] * kRow[x];
            }
            double expectedLse = score / Math.sqrt(d) + Math.log(visible);
            String where = math.description();
            assertEquals(expectedLse, lse.get(0, 0, 0, 0), 1e-5 * Math.abs(expectedLse), "lse " + where);
            for (int x = 0; x < d; x++) {
                assertEquals(vRow[x], out.get(0, 0, 0, x), 1e-5 * Math.abs(vRow[x]), "out[" + x + "] " + where);
            }
        }
    }
}
