package dev.aule.serving;

import dev.aule.Tensor;
import dev.aule.spi.TensorChecks;

import java.util.Objects;

/**
 * Rotary position embedding (RoPE) with precomputed cos/sin tables. Dimension pair {@code i} of a
 * row at position {@code p} is rotated by the angle {@code p * f_i}, with the frequency
 * {@code f_i = theta^(-2i / rotaryDim)} unless a {@link Scaling} changes it; the first
 * {@code rotaryDim} elements of a row are rotated, the rest (partial rotary) pass through untouched.
 *
 * <p>Styles: {@link Style#NEOX} pairs element {@code i} with {@code i + rotaryDim / 2} (the halves
 * of the rotary part: GPT-NeoX, Llama as exported by Hugging Face, FlashAttention's
 * {@code interleaved=False}); {@link Style#GPTJ} pairs {@code 2i} with {@code 2i + 1} (interleaved:
 * GPT-J, the original Llama checkpoints, FlashAttention's {@code interleaved=True}).
 *
 * <p>The angles come from one of three places: a base {@code theta} ({@link #of}), a base and a
 * {@link Scaling} rule for contexts past the training length (linear interpolation, NTK-aware, Llama
 * 3.1's frequency-dependent rule, YaRN), or tables the caller computed ({@link #ofTables}). Tables may
 * carry a magnitude (YaRN's attention factor multiplies cos and sin): pair {@code (a, b)} becomes
 * {@code (a cos - b sin, b cos + a sin)} with whatever {@code cos} and {@code sin} the table holds.
 *
 * <p>Differentiable: the rotation is linear in the row, so the gradient with respect to the input is
 * the transpose applied to the gradient with respect to the output, {@code (g0 cos + g1 sin,
 * g1 cos - g0 sin)}: {@link #applyBackward}. For unit tables ({@code cos^2 + sin^2 = 1}, every table
 * built from a theta except YaRN's with an attention factor other than 1) the transpose is the
 * inverse, a rotation by the negative angle, so {@code applyBackward(apply(x))} gives {@code x} back
 * within float rounding. Elements past {@code rotaryDim} pass their gradient through unchanged.
 *
 * <p>Layouts: {@code [B, H, S, D]} rows with a start position per batch entry ({@link #apply}), or
 * packed variable-length rows {@code [1, H, totalTokens, D]} with FlashAttention's
 * {@code cu_seqlens} offsets and a start position per packed sequence ({@link #applyPacked}), the
 * layout of {@link dev.aule.Attention#forwardVarlen}.
 *
 * <p>Every call checks all of its arguments and every position against the table before it writes:
 * on bad input it throws {@link IllegalArgumentException} naming the argument and leaves the tensor
 * as it was.
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

    /**
     * How positions or frequencies are stretched for long contexts (Hugging Face's {@code rope_scaling}
     * {@code rope_type}: {@code linear}, {@code dynamic} at a fixed factor, {@code llama3}, {@code yarn}).
     */
    public sealed interface Scaling permits Scaling.None, Scaling.Linear, Scaling.Ntk, Scaling.Llama3, Scaling.Yarn {
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

        /**
         * Llama 3.1's rule ({@code rope_type: llama3}): with the wavelength {@code w = 2 pi / f} of each
         * frequency, high frequencies ({@code w < originalMaxPositions / highFreqFactor}) are kept, low
         * ones ({@code w > originalMaxPositions / lowFreqFactor}) are divided by {@code factor}, and the
         * band between is interpolated: {@code (1 - s) f / factor + s f} with
         * {@code s = (originalMaxPositions / w - lowFreqFactor) / (highFreqFactor - lowFreqFactor)}.
         * Llama 3.1 uses {@code Llama3(8, 1, 4, 8192)} with theta 500000.
         *
         * @param factor the divisor of the low frequencies, finite and at least 1
         * @param lowFreqFactor finite and above 0
         * @param highFreqFactor finite and above {@code lowFreqFactor}
         * @param originalMaxPositions the context length the model was trained at, at least 1
         */
        record Llama3(double factor, double lowFreqFactor, double highFreqFactor, int originalMaxPositions)
                implements Scaling {
            /** Checks the factors and the length. */
            public Llama3 {
                requireFactor(factor);
                if (!(lowFreqFactor > 0) || Double.isInfinite(lowFreqFactor)) {
                    throw new IllegalArgumentException("lowFreqFactor: must be finite and > 0, got " + lowFreqFactor);
                }
                if (!(highFreqFactor > lowFreqFactor) || Double.isInfinite(highFreqFactor)) {
                    throw new IllegalArgumentException("highFreqFactor: must be finite and > lowFreqFactor "
                            + lowFreqFactor + ", got " + highFreqFactor);
                }
                if (originalMaxPositions < 1) {
                    throw new IllegalArgumentException(
                            "originalMaxPositions: must be >= 1, got " + originalMaxPositions);
                }
            }
        }

        /**
         * YaRN ({@code rope_type: yarn}): each frequency blends the interpolated {@code f / factor} and the
         * original {@code f} with a linear ramp over the pair index between the pairs that turn
         * {@code betaFast} and {@code betaSlow} times over {@code originalMaxPositions} positions (below
         * the first: original; past the second: interpolated), and cos and sin are multiplied by
         * {@code attentionFactor} (YaRN's {@code mscale}, {@code 0.1 ln(factor) + 1} by default). The ramp's
         * ends are rounded outwards (floor and ceil) and clamped to the pairs, as Hugging Face does.
         *
         * @param factor the interpolation factor, finite and at least 1
         * @param originalMaxPositions the context length the model was trained at, at least 1
         * @param betaFast rotations that mark the end kept as it is, finite and above {@code betaSlow}
         * @param betaSlow rotations that mark the end interpolated fully, finite and above 0
         * @param attentionFactor the magnitude of the tables, finite and above 0
         */
        record Yarn(double factor, int originalMaxPositions, double betaFast, double betaSlow, double attentionFactor)
                implements Scaling {
            /** Checks the parameters. */
            public Yarn {
                requireFactor(factor);
                if (originalMaxPositions < 1) {
                    throw new IllegalArgumentException(
                            "originalMaxPositions: must be >= 1, got " + originalMaxPositions);
                }
                if (!(betaSlow > 0) || Double.isInfinite(betaSlow)) {
                    throw new IllegalArgumentException("betaSlow: must be finite and > 0, got " + betaSlow);
                }
                if (!(betaFast > betaSlow) || Double.isInfinite(betaFast)) {
                    throw new IllegalArgumentException(
                            "betaFast: must be finite and > betaSlow " + betaSlow + ", got " + betaFast);
                }
                if (!(attentionFactor > 0) || Double.isInfinite(attentionFactor)) {
                    throw new IllegalArgumentException(
                            "attentionFactor: must be finite and > 0, got " + attentionFactor);
                }
            }

            /**
             * YaRN with the published defaults: {@code betaFast} 32, {@code betaSlow} 1 and the attention
             * factor {@code 0.1 ln(factor) + 1}.
             *
             * @param factor the interpolation factor, finite and at least 1
             * @param originalMaxPositions the context length the model was trained at, at least 1
             */
            public Yarn(double factor, int originalMaxPositions) {
                this(factor, originalMaxPositions, 32, 1, 0.1 * Math.log(requireFactor(factor)) + 1);
            }
        }

        private static double requireFactor(double factor) {
            if (!(factor >= 1) || Double.isInfinite(factor)) {
                throw new IllegalArgumentException("factor: must be finite and >= 1, got " + factor);
            }
            return factor;
        }
    }

    private final int rotaryDim;
    private final int maxPositions;
    private final Style style;
    private final double theta; // NaN for tables the caller gave
    private final Scaling scaling; // null for tables the caller gave
    private final double[] frequencies; // [rotaryDim / 2]; null for tables the caller gave
    private final float[] cos; // [maxPositions][rotaryDim / 2]
    private final float[] sin;

    private Rope(int rotaryDim, int maxPositions, double theta, Style style, Scaling scaling) {
        this.rotaryDim = rotaryDim;
        this.maxPositions = maxPositions;
        this.style = style;
        this.theta = theta;
        this.scaling = scaling;
        int half = rotaryDim / 2;
        this.frequencies = frequencies(rotaryDim, theta, scaling);
        double positionScale = scaling instanceof Scaling.Linear(double factor) ? 1 / factor : 1;
        double magnitude = scaling instanceof Scaling.Yarn yarn ? yarn.attentionFactor() : 1;
        this.cos = new float[maxPositions * half];
        this.sin = new float[maxPositions * half];
        for (int i = 0; i < half; i++) {
            for (int p = 0; p < maxPositions; p++) {
                double angle = p * positionScale * frequencies[i];
                cos[p * half + i] = (float) (magnitude * Math.cos(angle));
                sin[p * half + i] = (float) (magnitude * Math.sin(angle));
            }
        }
    }

    private Rope(int rotaryDim, Style style, float[] cos, float[] sin) {
        this.rotaryDim = rotaryDim;
        this.maxPositions = cos.length / (rotaryDim / 2);
        this.style = style;
        this.theta = Double.NaN;
        this.scaling = null;
        this.frequencies = null;
        this.cos = cos;
        this.sin = sin;
    }

    /** The frequency of each pair, in float64, with the scaling rules that change frequencies applied. */
    private static double[] frequencies(int rotaryDim, double theta, Scaling scaling) {
        int half = rotaryDim / 2;
        double base = scaling instanceof Scaling.Ntk(double factor)
                ? theta * Math.pow(factor, rotaryDim / (rotaryDim - 2.0))
                : theta;
        double[] f = new double[half];
        for (int i = 0; i < half; i++) {
            f[i] = Math.pow(base, -2.0 * i / rotaryDim);
        }
        if (scaling instanceof Scaling.Llama3 l) {
            double lowWavelength = l.originalMaxPositions() / l.lowFreqFactor();
            double highWavelength = l.originalMaxPositions() / l.highFreqFactor();
            for (int i = 0; i < half; i++) {
                double wavelength = 2 * Math.PI / f[i];
                if (wavelength > lowWavelength) {
                    f[i] /= l.factor();
                } else if (wavelength >= highWavelength) {
                    double s = (l.originalMaxPositions() / wavelength - l.lowFreqFactor())
                            / (l.highFreqFactor() - l.lowFreqFactor());
                    f[i] = (1 - s) * f[i] / l.factor() + s * f[i];
                }
            }
        } else if (scaling instanceof Scaling.Yarn y) {
            // The pair index at which a frequency turns `rotations` times over the original context.
            double low = Math.max(0, Math.floor(yarnPair(y.betaFast(), rotaryDim, theta, y.originalMaxPositions())));
            double high = Math.min(
                    rotaryDim - 1, Math.ceil(yarnPair(y.betaSlow(), rotaryDim, theta, y.originalMaxPositions())));
            if (high == low) {
                high += 0.001; // Hugging Face's guard against a zero-width ramp
            }
            for (int i = 0; i < half; i++) {
                double ramp = Math.clamp((i - low) / (high - low), 0.0, 1.0);
                double keep = 1 - ramp;
                f[i] = f[i] / y.factor() * (1 - keep) + f[i] * keep;
            }
        }
        return f;
    }

    private static double yarnPair(double rotations, int rotaryDim, double theta, int originalMaxPositions) {
        return rotaryDim * Math.log(originalMaxPositions / (rotations * 2 * Math.PI)) / (2 * Math.log(theta));
    }

    /**
     * Tables for positions {@code [0, maxPositions)}.
     *
     * @param rotaryDim rotated elements of each row: even, at least 2 (the head dim, or less for partial rotary)
     * @param maxPositions positions the tables cover, at least 1
     * @param theta the base, for example 10000 (Llama 2) or 500000 (Llama 3); finite and above 1
     * @param style which elements of a row rotate together
     * @param scaling how positions or frequencies are scaled: none, linear, NTK-aware, Llama 3.1 or YaRN
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

    /**
     * Tables the caller computed (FlashAttention's {@code apply_rotary_emb(x, cos, sin)}; Hugging Face's
     * {@code position_embeddings} halved): {@code cos[p][i]} and {@code sin[p][i]} rotate pair {@code i} of
     * a row at position {@code p}. The rotary dim is twice the row length. Copied: later changes to the
     * arrays do not reach the tables.
     *
     * @param cos one row per position, at least one, every row the same length of at least 1, all finite
     * @param sin the same shape as {@code cos}, all finite
     * @param style which elements of a row rotate together
     * @return the tables
     */
    public static Rope ofTables(float[][] cos, float[][] sin, Style style) {
        Objects.requireNonNull(cos, "cos");
        Objects.requireNonNull(sin, "sin");
        Objects.requireNonNull(style, "style");
        if (cos.length < 1) {
            throw new IllegalArgumentException("cos: must have at least one position (row), got 0");
        }
        if (sin.length != cos.length) {
            throw new IllegalArgumentException(
                    "sin: must have the " + cos.length + " positions (rows) of cos, got " + sin.length);
        }
        if (cos[0] == null || cos[0].length < 1) {
            throw new IllegalArgumentException("cos[0]: must hold at least one angle");
        }
        int half = cos[0].length;
        if ((long) cos.length * half > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException(
                    "cos: " + cos.length + " positions of " + half + " angles are more than one table holds");
        }
        float[] c = new float[cos.length * half];
        float[] s = new float[cos.length * half];
        for (int p = 0; p < cos.length; p++) {
            copyRow("cos", cos[p], p, half, c);
            copyRow("sin", sin[p], p, half, s);
        }
        return new Rope(2 * half, style, c, s);
    }

    private static void copyRow(String name, float[] row, int p, int half, float[] dst) {
        if (row == null || row.length != half) {
            throw new IllegalArgumentException(name + "[" + p + "]: must hold " + half + " angles like cos[0], got "
                    + (row == null ? "null" : row.length));
        }
        for (int i = 0; i < half; i++) {
            if (!Float.isFinite(row[i])) {
                throw new IllegalArgumentException(name + "[" + p + "][" + i + "]: must be finite, got " + row[i]);
            }
        }
        System.arraycopy(row, 0, dst, p * half, half);
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

    /** {@return the base of the angles; NaN for tables given with {@link #ofTables}} */
    public double theta() {
        return theta;
    }

    /** {@return how positions are scaled; empty for tables given with {@link #ofTables}} */
    public java.util.Optional<Scaling> scaling() {
        return java.util.Optional.ofNullable(scaling);
    }

    /** The frequency of pair {@code i}, before linear scaling divides positions (tests check the rules with it). */
    double frequency(int i) {
        if (frequencies == null) {
            throw new IllegalStateException("tables given by the caller have no frequencies");
        }
        return frequencies[i];
    }

    /**
     * Rotates {@code x} in place: row {@code s} of batch entry {@code b} is at position
     * {@code startPositions[b] + s}. Checks every position against the table before writing.
     *
     * @param x rows {@code [B, H, S, D]} to rotate, {@code D >= rotaryDim}; writable, no two elements sharing memory
     * @param startPositions the position of row 0 of each batch entry
     */
    public void apply(Tensor x, int[] startPositions) {
        rotateBatch("x", x, startPositions, false);
    }

    /**
     * Rotates {@code x} in place, row {@code s} of every batch entry at position {@code startPosition + s}.
     *
     * @param x rows {@code [B, H, S, D]} to rotate, {@code D >= rotaryDim}
     * @param startPosition the position of row 0
     */
    public void apply(Tensor x, int startPosition) {
        Objects.requireNonNull(x, "x");
        apply(x, sameStart(x, startPosition));
    }

    /**
     * The backward of {@link #apply(Tensor, int[])}, in place: turns the gradient with respect to the
     * rotated rows into the gradient with respect to the rows before rotation (the transpose of the
     * rotation; for unit tables, the rotation by the negative angle). Elements past {@code rotaryDim}
     * are left as they are (their gradient passes through).
     *
     * @param grad the gradient {@code [B, H, S, D]}, {@code D >= rotaryDim}; writable, no two elements sharing memory
     * @param startPositions the positions the forward used: of row 0 of each batch entry
     */
    public void applyBackward(Tensor grad, int[] startPositions) {
        rotateBatch("grad", grad, startPositions, true);
    }

    /**
     * The backward of {@link #apply(Tensor, int)}, in place.
     *
     * @param grad the gradient {@code [B, H, S, D]}, {@code D >= rotaryDim}
     * @param startPosition the position the forward used for row 0
     */
    public void applyBackward(Tensor grad, int startPosition) {
        Objects.requireNonNull(grad, "grad");
        applyBackward(grad, sameStart(grad, startPosition));
    }

    /**
     * Rotates packed variable-length rows in place: {@code x} is {@code [1, H, totalTokens, D]} with
     * sequence {@code n} at rows {@code [cuSeqlens[n], cuSeqlens[n + 1])}, its first row at position
     * {@code startPositions[n]} (0 for a fresh prompt, the cached length for a continuation).
     *
     * @param x packed rows {@code [1, H, totalTokens, D]}, {@code D >= rotaryDim}; writable, distinct elements
     * @param cuSeqlens where each sequence starts, then the total: {@code n + 1} entries, from 0,
     *     non-decreasing, ending at {@code totalTokens}
     * @param startPositions the position of each sequence's first row, {@code n} entries
     */
    public void applyPacked(Tensor x, int[] cuSeqlens, int[] startPositions) {
        rotatePacked("x", x, cuSeqlens, startPositions, false);
    }

    /**
     * The backward of {@link #applyPacked}, in place: gradient with respect to the rotated packed rows in,
     * gradient with respect to the rows before rotation out.
     *
     * @param grad the gradient {@code [1, H, totalTokens, D]}, {@code D >= rotaryDim}; writable, distinct elements
     * @param cuSeqlens the offsets the forward used
     * @param startPositions the start positions the forward used
     */
    public void applyPackedBackward(Tensor grad, int[] cuSeqlens, int[] startPositions) {
        rotatePacked("grad", grad, cuSeqlens, startPositions, true);
    }

    /**
     * A rotated copy of queries for attention against a cache (the caller's {@code q} is not written): the
     * {@code Sq} rows of batch entry {@code b} are the last {@code Sq} positions of a sequence of
     * {@code keyLens[b]} keys, so row {@code i} is rotated to position {@code keyLens[b] - Sq + i}, the positions
     * a cache holding those keys (appended with this RoPE) gave them. A batch entry with no keys is copied as it
     * is: its rows see nothing, and its output does not depend on them. The copy is contiguous, of q's dtype.
     *
     * @param q queries {@code [B, H, Sq, D]}, {@code D >= rotaryDim}
     * @param keyLens the keys each batch entry attends, {@code >= 0} (validated by the caller's entry point)
     * @return the rotated copy
     * @throws IllegalArgumentException when a batch entry with keys has fewer than {@code Sq} of them, or a
     *     position is outside the table
     */
    public Tensor rotatedQueries(Tensor q, int[] keyLens) {
        Objects.requireNonNull(q, "q");
        Objects.requireNonNull(keyLens, "keyLens");
        int[] lens = keyLens.clone();
        if (lens.length != q.batch()) {
            throw new IllegalArgumentException("keyLens: length " + lens.length + " must equal the batch " + q.batch()
                    + " of q " + q.shapeString());
        }
        checkRows("q", q);
        TensorChecks.checkAccessible("q", q);
        int sq = q.seqLen();
        for (int b = 0; b < lens.length; b++) {
            if (lens[b] > 0 && lens[b] < sq) {
                throw new IllegalArgumentException("q: its " + sq + " rows are the last positions of sequence " + b
                        + ", which has only " + lens[b] + " keys; RoPE in the call needs at least Sq keys");
            }
            if (lens[b] > 0) {
                checkPositions("q (sequence " + b + ")", lens[b] - sq, sq);
            }
        }
        Tensor copy = Tensor.allocate(q.dtype(), q.batch(), q.heads(), sq, q.headDim());
        float[] row = new float[q.headDim()];
        for (int b = 0; b < q.batch(); b++) {
            for (int h = 0; h < q.heads(); h++) {
                for (int s = 0; s < sq; s++) {
                    q.readRow(b, h, s, row, 0);
                    if (lens[b] > 0) {
                        rotate(row, 0, lens[b] - sq + s, false);
                    }
                    copy.writeRow(b, h, s, row, 0);
                }
            }
        }
        return copy;
    }

    private static int[] sameStart(Tensor x, int startPosition) {
        int[] starts = new int[x.batch()];
        java.util.Arrays.fill(starts, startPosition);
        return starts;
    }

    private void rotateBatch(String name, Tensor x, int[] startPositions, boolean transpose) {
        Objects.requireNonNull(x, name);
        Objects.requireNonNull(startPositions, "startPositions");
        if (startPositions.length != x.batch()) {
            throw new IllegalArgumentException("startPositions: length " + startPositions.length
                    + " must equal the batch " + x.batch() + " of " + name + " " + x.shapeString());
        }
        checkRows(name, x);
        // Rotated in place: x is an output (reachable, writable, no two rows sharing memory, which would
        // be rotated once per row that shares them).
        TensorChecks.checkWritable(name, x);
        int[] starts = startPositions.clone(); // checked and used: one read of the caller's array
        for (int b = 0; b < x.batch(); b++) {
            checkPositions("startPositions[" + b + "]", starts[b], x.seqLen());
        }
        float[] row = new float[x.headDim()];
        for (int b = 0; b < x.batch(); b++) {
            rotateRows(x, b, 0, x.seqLen(), starts[b], transpose, row);
        }
    }

    private void rotatePacked(String name, Tensor x, int[] cuSeqlens, int[] startPositions, boolean transpose) {
        Objects.requireNonNull(x, name);
        Objects.requireNonNull(cuSeqlens, "cuSeqlens");
        Objects.requireNonNull(startPositions, "startPositions");
        if (x.batch() != 1) {
            throw new IllegalArgumentException(
                    name + ": packed rows must have batch 1 ([1, H, totalTokens, D]), got " + x.shapeString());
        }
        int[] cu = cuSeqlens.clone();
        int[] starts = startPositions.clone();
        if (cu.length < 2 || cu[0] != 0 || cu[cu.length - 1] != x.seqLen()) {
            throw new IllegalArgumentException("cuSeqlens: must have at least 2 entries, start at 0 and end at the "
                    + x.seqLen() + " rows of " + name + ", got " + java.util.Arrays.toString(cu));
        }
        for (int n = 0; n + 1 < cu.length; n++) {
            if (cu[n + 1] < cu[n]) {
                throw new IllegalArgumentException("cuSeqlens: must be non-decreasing, got cuSeqlens[" + (n + 1) + "] "
                        + cu[n + 1] + " < cuSeqlens[" + n + "] " + cu[n]);
            }
        }
        if (starts.length != cu.length - 1) {
            throw new IllegalArgumentException("startPositions: length " + starts.length + " must equal the "
                    + (cu.length - 1) + " sequences of cuSeqlens");
        }
        checkRows(name, x);
        TensorChecks.checkWritable(name, x);
        for (int n = 0; n < starts.length; n++) {
            checkPositions("startPositions[" + n + "]", starts[n], cu[n + 1] - cu[n]);
        }
        float[] row = new float[x.headDim()];
        for (int n = 0; n < starts.length; n++) {
            rotateRows(x, 0, cu[n], cu[n + 1] - cu[n], starts[n], transpose, row);
        }
    }

    /** Rows {@code [s0, s0 + count)} of batch entry {@code b}, every head, row {@code s0} at {@code position0}. */
    private void rotateRows(Tensor x, int b, int s0, int count, int position0, boolean transpose, float[] row) {
        for (int h = 0; h < x.heads(); h++) {
            for (int s = 0; s < count; s++) {
                x.readRow(b, h, s0 + s, row, 0);
                rotate(row, 0, position0 + s, transpose);
                x.writeRow(b, h, s0 + s, row, 0);
            }
        }
    }

    /** Rotates one row {@code row[off, off + rotaryDim)} to {@code position}, which must be in the table. */
    void rotate(float[] row, int off, int position) {
        rotate(row, off, position, false);
    }

    /**
     * Rotates one row to {@code position}, or with {@code transpose} applies the transpose of that
     * rotation (the backward: {@code sin} negated).
     */
    void rotate(float[] row, int off, int position, boolean transpose) {
        Objects.checkIndex(position, maxPositions);
        Objects.checkFromIndexSize(off, rotaryDim, row.length);
        int half = rotaryDim / 2;
        int at = position * half;
        float sign = transpose ? -1f : 1f;
        // NEOX pairs (i, i + half); GPT-J pairs (2i, 2i + 1): the same rotation with other strides.
        int second = style == Style.NEOX ? half : 1;
        int step = style == Style.NEOX ? 1 : 2;
        for (int i = 0; i < half; i++) {
            int j = off + i * step;
            float a = row[j];
            float b = row[j + second];
            float c = cos[at + i];
            float s = sign * sin[at + i];
            row[j] = a * c - b * s;
            row[j + second] = b * c + a * s;
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
        String angles = scaling == null ? "tables given" : "theta " + theta + ", " + scaling;
        return "Rope[" + style + ", rotaryDim " + rotaryDim + ", " + angles + ", " + maxPositions + " positions]";
    }
}
