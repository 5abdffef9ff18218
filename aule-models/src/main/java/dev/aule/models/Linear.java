package dev.aule.models;

/**
 * A dense layer {@code y = x W + b} with {@code W} {@code [in][out]} packed for {@link Gemm}. The bias, and what
 * follows the layer in an encoder (an activation, or a residual sum), are applied to each block of the product on
 * the thread that wrote it, while the block is in cache: no separate pass over the output.
 *
 * @param weight {@code W}, packed
 * @param bias {@code b}, {@code out} values
 */
record Linear(Gemm.Packed weight, float[] bias) {
    Linear {
        if (bias.length != weight.n()) {
            throw new IllegalArgumentException(
                    "bias: " + bias.length + " values for a layer of " + weight.n() + " outputs");
        }
    }

    /** The layer of {@code weight} {@code [in][out]} (row-major) and {@code bias}, packed into an array of its own. */
    static Linear of(float[] weight, float[] bias, int in, int out) {
        return new Linear(Gemm.pack(weight, in, out), bias);
    }

    /** Input features. */
    int in() {
        return weight.k();
    }

    /** Output features. */
    int out() {
        return weight.n();
    }

    /** {@code y[r] = x[r] W + b} for {@code r < rows} (a multiple of 4; both arrays at least that many rows). */
    void apply(float[] x, int rows, float[] y) {
        Gemm.multiply(x, rows, weight, y, (r0, count, c0, width) -> addBias(y, r0, count, c0, width));
    }

    /** {@code y[r] = activation(x[r] W + b)} for {@code r < rows}, as {@link #apply}. */
    void applyActivated(float[] x, int rows, float[] y, BertConfig.Activation activation) {
        int out = out();
        Gemm.multiply(x, rows, weight, y, (r0, count, c0, width) -> {
            addBias(y, r0, count, c0, width);
            for (int r = r0; r < r0 + count; r++) {
                Activations.apply(activation, y, r * out + c0, r * out + c0 + width);
            }
        });
    }

    /**
     * {@code residual[r] += x[r] W + b} for {@code r < rows}, with {@code y} as the product's scratch (as long as
     * {@code residual}): the sum rounds {@code x W + b} to float first, as a separate add would.
     */
    void applyResidual(float[] x, int rows, float[] y, float[] residual) {
        int out = out();
        Gemm.multiply(
                x,
                rows,
                weight,
                y,
                (r0, count, c0, width) -> Epilogues.addResidual(residual, y, r0, count, out, c0, width, bias));
    }

    private void addBias(float[] y, int r0, int rows, int c0, int width) {
        Epilogues.addBias(y, r0, rows, out(), c0, width, bias);
    }
}
