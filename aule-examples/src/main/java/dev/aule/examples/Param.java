package dev.aule.examples;

/**
 * A named parameter, its accumulated gradient and AdamW's two moment estimates.
 *
 * <p>AdamW (decoupled weight decay): {@code value -= lr * (mHat / (sqrt(vHat) + eps) + decay * value)},
 * with the decay only on the parameters that take it (matrices, not norm gains).
 */
final class Param {
    private static final float BETA1 = 0.9f;
    private static final float BETA2 = 0.99f;
    private static final float EPSILON = 1e-8f;

    final String name;
    final float[] value;
    final float[] grad;
    final boolean decays;
    private final float[] m;
    private final float[] v;

    Param(String name, int size, boolean decays) {
        this.name = name;
        this.value = new float[size];
        this.grad = new float[size];
        this.decays = decays;
        this.m = new float[size];
        this.v = new float[size];
    }

    /** One AdamW update from the accumulated gradient, which it then clears; {@code step} counts from 1. */
    void adamW(float lr, float weightDecay, int step) {
        double correction1 = 1 - Math.pow(BETA1, step);
        double correction2 = 1 - Math.pow(BETA2, step);
        float decay = decays ? weightDecay : 0f;
        for (int i = 0; i < value.length; i++) {
            m[i] = BETA1 * m[i] + (1 - BETA1) * grad[i];
            v[i] = BETA2 * v[i] + (1 - BETA2) * grad[i] * grad[i];
            double mHat = m[i] / correction1;
            double vHat = v[i] / correction2;
            value[i] -= (float) (lr * (mHat / (Math.sqrt(vHat) + EPSILON) + decay * value[i]));
            grad[i] = 0f;
        }
    }
}
