package dev.aule.models;

/**
 * A dense layer {@code y = x W + b} with {@code W} {@code [in][out]} packed for {@link Gemm}.
 *
 * @param in input features
 * @param out output features
 * @param packed {@code W} in {@link Gemm#pack} panels
 * @param bias {@code b}, {@code out} values
 */
record Linear(int in, int out, float[] packed, float[] bias) {
    static Linear of(float[] weight, float[] bias, int in, int out) {
        return new Linear(in, out, Gemm.pack(weight, in, out), bias);
    }

    /** {@code y[r] = x[r] W + b} for {@code r < rows} (a multiple of 4; both arrays at least that many rows). */
    void apply(float[] x, int rows, float[] y) {
        Gemm.multiply(x, rows, in, packed, out, y);
        for (int r = 0; r < rows; r++) {
            int o = r * out;
            for (int j = 0; j < out; j++) {
                y[o + j] += bias[j];
            }
        }
    }
}
