package dev.aule.serving;

import dev.aule.Tensor;
import dev.aule.spi.TensorChecks;

import java.util.Objects;

/**
 * Rotary position embedding (RoPE) with precomputed cos/sin tables. Dimension pair {@code i} of a
 * row at position {@code p} is rotated by the angle {@code p * theta^(-2i / rotaryDim)}; the first
 * {@code rotaryDim} elements of a row are rotated, the rest (partial rotary) are left alone.
 *
 * <p>Styles: {@link Style#NEOX} pairs element {@code i} with {@code i + rotaryDim / 2} (the halves
 * of the rotary part: GPT-NeoX, Llama as exported by Hugging Face); {@link Style#GPTJ} pairs
 * {@code 2i} with {@code 2i + 1} (interleaved: GPT-J, the original Llama checkpoints).
 *
 * <p>Scaling for contexts past training length: {@link Scaling.Linear} divides positions by the
 * factor (position interpolation); {@link Scaling.Ntk} raises the base to
 * {@code theta * factor^(rotaryDim / (rotaryDim - 2))} (NTK-aware), stretching low frequencies
 * more than high ones.
 *
 * <p>Immutable and thread-safe. Angles are computed in float64 and stored as float.
 */
public final class Rope {
    /** Which elements form a rotated pair. */
    public enum Style {
        /** {@code (x[i], x[i + rotaryDim/2])}: half-split. */
        NEOX,
        /** {@code (x[2i], x[2i + 1])}: interleaved. */
        GPTJ
    }

    /** How positions or frequencies are stretched for long contexts. */
    public sealed interface Scaling permits Scaling.None, Scaling.Linear, Scaling.Ntk {
        /** No scaling. */
        record None() implements Scaling {}

        /**
         * Position interpolation: the angle uses {@code position / factor}.
         *
         * @param factor the divisor of every position, finite and at least 1
         */
        record Linear(double factor) implements Scaling {
            /** Checks the factor. */
            public Linear {
                requireFactor(factor);
            }
        }

        /**
         * NTK-aware: the base becomes {@code theta * factor^(rotaryDim / (rotaryDim - 2))}.
         *
         * @param factor the scaling factor, finite and at least 1
         */
        record Ntk(double factor) implements Scaling {
            /** Checks the factor. */
            public Ntk {
                requireFactor(factor);
            }
        }

        private static void requireFactor(double factor) {
            if (!(factor >= 1) || Double.isInfinite(factor)) {
                throw new IllegalArgumentException("factor: must be finite and >= 1, got " + factor);
            }
        }
    }

    private final int rotaryDim;
    private final int maxPositions;
    private final Style style;
    private final double theta;
    private final Scaling scaling;
    private final float[] cos; // [maxPositions][rotaryDim / 2]
    private final float[] sin;

    private Rope(int rotaryDim, int maxPositions, double theta, Style style, Scaling scaling) {
        this.rotaryDim = rotaryDim;
        this.maxPositions = maxPositions;
        this.style = style;
        this.theta = theta;
        this.scaling = scaling;
        int half = rotaryDim / 2;
        double base = scaling instanceof Scaling.Ntk(double factor)
                ? theta * Math.pow(factor, rotaryDim / (rotaryDim - 2.0))
                : theta;
        double positionScale = scaling instanceof Scaling.Linear(double factor) ? 1 / factor : 1;
        this.cos = new float[maxPositions * half];
        this.sin = new float[maxPositions * half];
        for (int i = 0; i < half; i++) {
            double frequency = Math.pow(base, -2.0 * i / rotaryDim);
            for (int p = 0; p < maxPositions; p++) {
                double angle = p * positionScale * frequency;
                cos[p * half + i] = (float) Math.cos(angle);
                sin[p * half + i] = (float) Math.sin(angle);
            }
        }
    }

    /**
     * Tables for positions {@code [0, maxPositions)}.
     *
     * @param rotaryDim rotated elements of each row: even, at least 2 (the head dim, or less for partial rotary)
     * @param maxPositions positions the tables cover, at least 1
     * @param theta the base, for example 10000 (Llama 2) or 500000 (Llama 3); finite and above 1
     * @param style which elements of a row rotate together
     * @param scaling how positions are scaled: none, linear interpolation or NTK-aware
     * @return the tables
     */
    public static Rope of(int rotaryDim, int maxPositions, double theta, Style style, Scaling scaling) {
        Objects.requireNonNull(style, "style");
        Objects.requireNonNull(scaling, "scaling");
        if (rotaryDim < 2 || rotaryDim % 2 != 0) {
            throw new IllegalArgumentException("rotaryDim: must be even and >= 2, got " + rotaryDim);
        }
        if (maxPositions < 1) {
            throw new IllegalArgumentException("maxPositions: must be >= 1, got " + maxPositions);
        }
        if (!(theta > 1) || Double.isInfinite(theta)) {
            throw new IllegalArgumentException("theta: must be finite and > 1, got " + theta);
        }
        if ((long) maxPositions * (rotaryDim / 2) > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("maxPositions: " + maxPositions + " positions of " + rotaryDim / 2
                    + " angles are more than one table holds");
        }
        return new Rope(rotaryDim, maxPositions, theta, style, scaling);
    }

    /**
     * Unscaled tables.
     *
     * @param rotaryDim rotated elements of each row: even, at least 2
     * @param maxPositions positions the tables cover, at least 1
     * @param theta the base, finite and above 1
     * @param style which elements of a row rotate together
     * @return the tables
     */
    public static Rope of(int rotaryDim, int maxPositions, double theta, Style style) {
        return of(rotaryDim, maxPositions, theta, style, new Scaling.None());
    }

    /** {@return the rotated elements of each row} */
    public int rotaryDim() {
        return rotaryDim;
    }

    /** {@return the positions the tables cover} */
    public int maxPositions() {
        return maxPositions;
    }

    /** {@return which elements of a row rotate together} */
    public Style style() {
        return style;
    }

    /** {@return the base of the angles} */
    public double theta() {
        return theta;
    }

    /** {@return how positions are scaled} */
    public Scaling scaling() {
        return scaling;
    }

    /**
     * Rotates {@code x} in place: row {@code s} of batch entry {@code b} is at position
     * {@code startPositions[b] + s}. Checks every position against the table before writing.
     *
     * @param x rows {@code [B, H, S, D]} to rotate, {@code D >= rotaryDim}; writable, no two elements sharing memory
     * @param startPositions the position of row 0 of each batch entry
     */
    public void apply(Tensor x, int[] startPositions) {
        Objects.requireNonNull(x, "x");
        Objects.requireNonNull(startPositions, "startPositions");
        if (startPositions.length != x.batch()) {
            throw new IllegalArgumentException("startPositions: length " + startPositions.length
                    + " must equal the batch " + x.batch() + " of x " + x.shapeString());
        }
        checkRows("x", x);
        // Rotated in place: x is an output (reachable, writable, no two rows sharing memory, which would
        // be rotated once per row that shares them).
        TensorChecks.checkWritable("x", x);
        for (int b = 0; b < x.batch(); b++) {
            checkPositions("startPositions[" + b + "]", startPositions[b], x.seqLen());
        }
        float[] row = new float[x.headDim()];
        for (int b = 0; b < x.batch(); b++) {
            for (int h = 0; h < x.heads(); h++) {
                for (int s = 0; s < x.seqLen(); s++) {
                    x.readRow(b, h, s, row, 0);
                    rotate(row, 0, startPositions[b] + s);
                    x.writeRow(b, h, s, row, 0);
                }
            }
        }
    }

    /**
     * Rotates {@code x} in place, row {@code s} of every batch entry at position {@code startPosition + s}.
     *
     * @param x rows {@code [B, H, S, D]} to rotate, {@code D >= rotaryDim}
     * @param startPosition the position of row 0
     */
    public void apply(Tensor x, int startPosition) {
        Objects.requireNonNull(x, "x");
        int[] starts = new int[x.batch()];
        java.util.Arrays.fill(starts, startPosition);
        apply(x, starts);
    }

    /** Rotates one row {@code row[off, off + rotaryDim)} to {@code position}, which must be in the table. */
    void rotate(float[] row, int off, int position) {
        Objects.checkIndex(position, maxPositions);
        Objects.checkFromIndexSize(off, rotaryDim, row.length);
        int half = rotaryDim / 2;
        int at = position * half;
        if (style == Style.NEOX) {
            for (int i = 0; i < half; i++) {
                float a = row[off + i];
                float b = row[off + i + half];
                row[off + i] = a * cos[at + i] - b * sin[at + i];
                row[off + i + half] = b * cos[at + i] + a * sin[at + i];
            }
        } else {
            for (int i = 0; i < half; i++) {
                float a = row[off + 2 * i];
                float b = row[off + 2 * i + 1];
                row[off + 2 * i] = a * cos[at + i] - b * sin[at + i];
                row[off + 2 * i + 1] = b * cos[at + i] + a * sin[at + i];
            }
        }
    }

    /** Checks that {@code t}'s rows are long enough to rotate. */
    void checkRows(String name, Tensor t) {
        if (t.headDim() < rotaryDim) {
            throw new IllegalArgumentException(name + ": head dim " + t.headDim() + " is below the rotary dim "
                    + rotaryDim + " of this RoPE " + t.shapeString());
        }
    }

    /** Checks that positions {@code [start, start + count)} are in the table. */
    void checkPositions(String name, long start, int count) {
        if (start < 0 || start + count > maxPositions) {
            throw new IllegalArgumentException(name + ": positions [" + start + ", " + (start + count)
                    + ") must lie in [0, maxPositions " + maxPositions + ") of this RoPE table");
        }
    }

    @Override
    public String toString() {
        return "Rope[" + style + ", rotaryDim " + rotaryDim + ", theta " + theta + ", " + scaling + ", " + maxPositions
                + " positions]";
    }
}
