package dev.aule.serving;

import java.util.SplittableRandom;

/**
 * A random serving geometry: how many sequences, GQA/MQA heads and head dims (odd ones included).
 *
 * @param sequences the sequences of a call (the batch of a cache)
 * @param kvHeads {@code Hkv}
 * @param group query heads per KV head ({@code Hq / Hkv})
 * @param headDim {@code D}
 * @param valueDim {@code Dv}
 */
record Geometry(int sequences, int kvHeads, int group, int headDim, int valueDim) {
    /** Up to {@code maxSequences} sequences; Dv is {@code otherValueDim} a quarter of the time, else D. */
    static Geometry random(SplittableRandom rnd, int maxSequences, int otherValueDim) {
        int sequences = 1 + rnd.nextInt(maxSequences);
        int kvHeads = 1 + rnd.nextInt(2);
        int group = new int[] {1, 2, 4}[rnd.nextInt(3)];
        int d = new int[] {16, 32, 64, 7}[rnd.nextInt(4)];
        return new Geometry(sequences, kvHeads, group, d, rnd.nextInt(4) == 0 ? otherValueDim : d);
    }

    int queryHeads() {
        return kvHeads * group;
    }
}
