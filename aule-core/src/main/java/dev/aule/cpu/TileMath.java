package dev.aule.cpu;

/**
 * The arithmetic of one FlashAttention tile, with a SIMD and a scalar implementation.
 *
 * <p>Layouts (all row-major {@code float[]} scratch, padded so every row is whole vectors):
 * a query tile {@code q[rows][d]}, a key block transposed {@code kt[d][keyTile]}, scores and
 * probabilities {@code s[rows][keyTile]}, a value block {@code v[keyTile][dvp]} and the output
 * accumulator {@code o[rows][dvp]}, with {@code dvp} a multiple of {@link #lanes()}.
 * {@code rows} is always a multiple of 4.
 */
interface TileMath {

    /** Floats per vector; value rows are padded to a multiple of it. */
    int lanes();

    /** Keys per block: the row length of the score tile. */
    int keyTile();

    /** One line for people: "512-bit Vector API", "scalar". */
    String description();

    /** {@code s = q kt} for {@code rows} query rows against one key block. */
    void scores(float[] q, int rows, int d, float[] kt, float[] s);

    /** {@code x[off, off+n) *= factor}. */
    void scale(float[] x, int off, int n, float factor);

    /** {@code s = cap * tanh(s / cap)} over {@code s[off, off+n)}. */
    void softcap(float[] s, int off, int n, float cap);

    /** {@code s[off + j] -= slope * |center - j|} for {@code j} in {@code [0, n)}: ALiBi's distance penalty. */
    void alibi(float[] s, int off, int n, float slope, float center);

    /** Largest of {@code s[off, off+n)}. */
    float max(float[] s, int off, int n);

    /** {@code s = exp(s - max)} in place over {@code s[off, off+n)}; returns the sum. {@code -inf} gives 0. */
    float expSum(float[] s, int off, int n, float max);

    /**
     * {@code o[t] = alpha[t] * o[t] + sum_j p[t][j] * v[j]} for {@code t < rows} and {@code j < keys}:
     * the online-softmax rescale fused with the probabilities-times-values product.
     */
    void accumulate(float[] p, int rows, int keys, float[] v, int dvp, float[] o, float[] alpha);
}
