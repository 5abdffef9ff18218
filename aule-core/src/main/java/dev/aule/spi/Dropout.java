package dev.aule.spi;

/**
 * The dropout keep bits of attention probabilities: a pure function of {@code (seed, batch, query head, query row,
 * key)}, so that every backend, tiling, thread count and key split, the forward and the backward, draw the same
 * bits. Specified exactly (docs/DESIGN.md, "Dropout"), in wrapping 32- and 64-bit integer arithmetic:
 *
 * <pre>
 *   mix64(z)  = SplitMix64's finaliser: z ^= z &gt;&gt;&gt; 30; z *= 0xbf58476d1ce4e5b9; z ^= z &gt;&gt;&gt; 27;
 *               z *= 0x94d049bb133111eb; z ^= z &gt;&gt;&gt; 31
 *   rowKey    = r with r = mix64(seed + G), r = mix64((r ^ b) + G), r = mix64((r ^ h) + G), r = mix64((r ^ i) + G),
 *               G = 0x9e3779b97f4a7c15, and b, h, i sign-extended ints
 *   lo, hi    = the low and high 32 bits of rowKey
 *   g(j)      = (j &gt;&gt;&gt; 5) * 16 + (j &amp; 15)     half(j) = (j &gt;&gt;&gt; 4) &amp; 1
 *   x         = triple32(lo ^ (g(j) * 0x9e3779b9 + hi))
 *   triple32  = x ^= x &gt;&gt;&gt; 17; x *= 0xed5ad4bb; x ^= x &gt;&gt;&gt; 11; x *= 0xac4c1b51; x ^= x &gt;&gt;&gt; 15;
 *               x *= 0x31848bab; x ^= x &gt;&gt;&gt; 14
 *   r(j)      = half(j) == 0 ? x &amp; 0xffff : x &gt;&gt;&gt; 16
 *   keep      = r(j) &gt;= threshold, threshold = round(p * 65536)
 * </pre>
 *
 * Keys {@code j} and {@code j + 16} of each aligned group of 32 share one 32-bit hash (its two halves), so a SIMD
 * loop hashes one vector of lanes for two vectors of keys. A kept probability is multiplied by {@code 1 / (1 - p)};
 * the keep probability is {@code 1 - threshold / 65536}, {@code p} to within {@code 2^-17}.
 */
public final class Dropout {
    /** SplitMix64's increment, the golden ratio in 64 bits. */
    public static final long GOLDEN64 = 0x9e3779b97f4a7c15L;
    /** The multiplier of a key's group index. */
    public static final int GOLDEN32 = 0x9e3779b9;

    private Dropout() {}

    /**
     * The threshold a 16-bit draw is compared with.
     *
     * @param p the dropout probability, in {@code [0, 1)}
     * @return {@code round(p * 65536)}
     */
    public static int threshold(float p) {
        return (int) Math.round(p * 65536.0);
    }

    /**
     * The key of one query row.
     *
     * @param seed the call's seed
     * @param batch the batch entry (the sequence of a packed call)
     * @param head the query head
     * @param row the query row
     * @return the row's 64-bit key
     */
    public static long rowKey(long seed, int batch, int head, int row) {
        long r = mix64(seed + GOLDEN64);
        r = mix64((r ^ batch) + GOLDEN64);
        r = mix64((r ^ head) + GOLDEN64);
        return mix64((r ^ row) + GOLDEN64);
    }

    /**
     * The 16-bit draw of key {@code key} of a row.
     *
     * @param rowKey the row's key ({@link #rowKey})
     * @param key the key index, at least 0
     * @return the draw, in {@code [0, 65536)}
     */
    public static int draw(long rowKey, int key) {
        int x = hash((int) rowKey, (int) (rowKey >>> 32), group(key));
        return ((key >>> 4) & 1) == 0 ? x & 0xffff : x >>> 16;
    }

    /**
     * Whether key {@code key} of a row is kept.
     *
     * @param rowKey the row's key ({@link #rowKey})
     * @param key the key index, at least 0
     * @param threshold {@link #threshold} of the call's probability
     * @return whether the pair is kept
     */
    public static boolean keep(long rowKey, int key, int threshold) {
        return draw(rowKey, key) >= threshold;
    }

    /**
     * The hash index of a key: keys {@code j} and {@code j + 16} of an aligned group of 32 share one.
     *
     * @param key the key index
     * @return {@code (key >>> 5) * 16 + (key & 15)}
     */
    public static int group(int key) {
        return (key >>> 5) * 16 + (key & 15);
    }

    /**
     * The 32-bit hash of group {@code g} of a row whose key halves are {@code lo} and {@code hi}.
     *
     * @param lo the low 32 bits of the row key
     * @param hi the high 32 bits of the row key
     * @param g the group index ({@link #group})
     * @return {@code triple32(lo ^ (g * 0x9e3779b9 + hi))}
     */
    public static int hash(int lo, int hi, int g) {
        return triple32(lo ^ (g * GOLDEN32 + hi));
    }

    /**
     * A 32-bit integer mixer of three xorshift-multiply rounds (Wellons' "triple32").
     *
     * @param x the input
     * @return the mixed value
     */
    public static int triple32(int x) {
        x ^= x >>> 17;
        x *= 0xed5ad4bb;
        x ^= x >>> 11;
        x *= 0xac4c1b51;
        x ^= x >>> 15;
        x *= 0x31848bab;
        x ^= x >>> 14;
        return x;
    }

    /**
     * SplitMix64's finaliser (Stafford's variant 13).
     *
     * @param z the input
     * @return the mixed value
     */
    public static long mix64(long z) {
        z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
        z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
        return z ^ (z >>> 31);
    }
}
