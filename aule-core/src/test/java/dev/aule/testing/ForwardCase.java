package dev.aule.testing;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.Accuracy;
import dev.aule.spi.AttentionBackend;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * One randomly drawn forward call: shapes, dtypes, layouts and options, all derived from a seed, so
 * {@code ForwardCase.random(seed, ...)} rebuilds any failing case exactly. {@link #check} runs it on
 * a backend and on the float64 reference and measures the contract's error.
 *
 * @param seed the seed of this case; also seeds its tensor data
 * @param batch {@code B}
 * @param kvHeads {@code Hkv}
 * @param group query heads per KV head ({@code Hq / Hkv})
 * @param queryLen {@code Sq}
 * @param keyLen {@code Sk}
 * @param headDim {@code D}
 * @param valueDim {@code Dv}
 * @param qType dtype of q
 * @param kvType dtype of k and v
 * @param outType dtype of the output
 * @param layouts layouts of q, k, v and out, in that order
 * @param stridedLse whether the LSE is a strided view (every third float) instead of contiguous
 * @param options the attention options
 */
public record ForwardCase(
        long seed,
        int batch,
        int kvHeads,
        int group,
        int queryLen,
        int keyLen,
        int headDim,
        int valueDim,
        DType qType,
        DType kvType,
        DType outType,
        Layout[] layouts,
        boolean stridedLse,
        AttentionOptions options) {

    /** Sequence lengths: odd, one below and above a tile of 64, and Sq/Sk both ways. */
    public static final int[] LENGTHS = {1, 3, 17, 64, 65, 127, 200};
    /** Head dims of real models plus odd ones that leave partial vectors. */
    public static final int[] HEAD_DIMS = {16, 32, 64, 80, 96, 128, 256, 1, 7, 33};
    /** Query heads per KV head: MHA, GQA 2:1, 4:1 and 8:1 (MQA when Hkv is 1). */
    public static final int[] GROUPS = {1, 2, 4, 8};
    /** Upper bound on {@code B * Hq * Sq * Sk * (D + Dv)}: the float64 reference is slow on purpose. */
    public static final long MAX_WORK = 24_000_000L;

    public int queryHeads() {
        return kvHeads * group;
    }

    /**
     * The call {@code c} as a case: q, k, v and out all of {@code c}'s dtype and {@link Layout#BHSD}, a contiguous
     * LSE, data from {@code seed}.
     */
    public static ForwardCase of(long seed, BackwardCases.Case c) {
        DType t = c.dtype();
        Layout[] layouts = {Layout.BHSD, Layout.BHSD, Layout.BHSD, Layout.BHSD};
        int group = c.queryHeads() / c.kvHeads();
        return new ForwardCase(
                seed,
                c.batch(),
                c.kvHeads(),
                group,
                c.queryLen(),
                c.keyLen(),
                c.headDim(),
                c.valueDim(),
                t,
                t,
                t,
                layouts,
                false,
                c.options());
    }

    /**
     * A random case. With {@code halfPrecision}, q, k, v and out are each F16 or BF16 (or, now and then,
     * F32, to mix precisions); otherwise everything is F32.
     */
    public static ForwardCase random(long seed, boolean halfPrecision) {
        SplittableRandom rnd = new SplittableRandom(seed);
        while (true) {
            int batch = 1 + rnd.nextInt(2);
            int group = pick(rnd, GROUPS);
            int kvHeads = rnd.nextInt(4) == 0 ? 1 : 1 + rnd.nextInt(group >= 4 ? 2 : 3);
            int queryLen = pick(rnd, LENGTHS);
            int keyLen = pick(rnd, LENGTHS);
            int headDim = pick(rnd, HEAD_DIMS);
            int valueDim = rnd.nextInt(4) == 0 ? pick(rnd, HEAD_DIMS) : headDim;
            long work = (long) batch * kvHeads * group * queryLen * keyLen * (headDim + valueDim);
            if (work > MAX_WORK) {
                continue; // redraw: keeps big head dims on the smaller shapes
            }
            DType qType = halfPrecision ? pickType(rnd) : DType.F32;
            DType kvType = halfPrecision ? pickType(rnd) : DType.F32;
            DType outType = halfPrecision ? pickType(rnd) : DType.F32;
            Layout[] layouts = new Layout[4];
            for (int i = 0; i < 4; i++) {
                layouts[i] = rnd.nextInt(3) == 0 ? Layout.BHSD : Layout.values()[rnd.nextInt(Layout.values().length)];
            }
            AttentionOptions options = randomOptions(rnd, kvHeads * group, keyLen);
            return new ForwardCase(
                    seed,
                    batch,
                    kvHeads,
                    group,
                    queryLen,
                    keyLen,
                    headDim,
                    valueDim,
                    qType,
                    kvType,
                    outType,
                    layouts,
                    rnd.nextInt(4) == 0,
                    options);
        }
    }

    /** Every option, each on about half the time, so combinations of all of them come up. */
    public static AttentionOptions randomOptions(SplittableRandom rnd, int queryHeads, int keyLen) {
        AttentionOptions.Builder b = AttentionOptions.builder().causal(rnd.nextBoolean());
        switch (rnd.nextInt(6)) {
            case 0 -> b.window(rnd.nextInt(keyLen + 2), rnd.nextInt(keyLen + 2)); // bounded both sides
            case 1 -> b.window(rnd.nextInt(keyLen + 2), -1); // sliding window (left only)
            case 2 -> b.window(-1, rnd.nextInt(keyLen + 2)); // right only
            case 3 -> b.window(0, 0); // the diagonal alone
            default -> {} // unbounded
        }
        if (rnd.nextInt(3) == 0) {
            b.softcap(pick(rnd, new float[] {0.5f, 2f, 5f, 30f, 50f}));
        }
        if (rnd.nextInt(3) == 0) {
            float[] slopes = new float[queryHeads];
            boolean geometric = rnd.nextBoolean();
            for (int h = 0; h < queryHeads; h++) {
                // The ALiBi paper's geometric slopes 2^(-8(h+1)/H), or arbitrary ones (zero included).
                slopes[h] = geometric ? (float) Math.pow(2, -8.0 * (h + 1) / queryHeads) : (float) rnd.nextDouble();
            }
            b.alibiSlopes(slopes);
        }
        if (rnd.nextInt(3) != 0) {
            // Large scales (10) make near one-hot rows and push the online softmax's running max around.
            b.scale(pick(rnd, new float[] {0.01f, 0.125f, 0.5f, 1f, 2f, 10f, -0.5f, 0f}));
        }
        return b.build();
    }

    /** What one run measured. */
    public record Outcome(
            double outError, double outTolerance, double lseError, long outGapWritten, boolean inputsUnchanged) {}

    /**
     * Builds the tensors (data from the seed), poisons out and lse with NaN, runs {@code backend},
     * then the reference on the same inputs into an F32 output, and measures both errors.
     */
    public Outcome check(AttentionBackend backend) {
        SplittableRandom rnd = new SplittableRandom(seed * 0x9E3779B97F4A7C15L + 1);
        // Native memory from a confined arena (owner thread only) for odd seeds, a shared one for even.
        try (Arena arena = confinedArena() ? Arena.ofConfined() : Arena.ofShared()) {
            Tensor q = layouts[0].allocate(qType, batch, queryHeads(), queryLen, headDim, arena, rnd);
            Tensor k = layouts[1].allocate(kvType, batch, kvHeads, keyLen, headDim, arena, rnd);
            Tensor v = layouts[2].allocate(kvType, batch, kvHeads, keyLen, valueDim, arena, rnd);
            Tensors.fillRandom(rnd, q);
            Tensors.fillRandom(rnd, k);
            Tensors.fillRandom(rnd, v);
            float[][] inputsBefore = {q.toFloatArray(), k.toFloatArray(), v.toFloatArray()};

            Tensor out = layouts[3].allocate(outType, batch, queryHeads(), queryLen, valueDim, arena, rnd);
            Tensor lse = stridedLse
                    ? stridedLse(batch, queryHeads(), queryLen)
                    : Tensor.allocate(DType.F32, batch, queryHeads(), queryLen, 1);
            lse.fill(Float.NaN);
            byte[] outBefore = out.memory().toArray(ValueLayout.JAVA_BYTE);

            backend.forward(q, k, v, out, lse, options);

            Tensor ref = Tensor.allocate(DType.F32, batch, queryHeads(), queryLen, valueDim);
            Tensor refLse = Tensor.allocate(DType.F32, batch, queryHeads(), queryLen, 1);
            Backends.get("reference").forward(q, k, v, ref, refLse, options);

            boolean unchanged = Arrays.equals(inputsBefore[0], q.toFloatArray())
                    && Arrays.equals(inputsBefore[1], k.toFloatArray())
                    && Arrays.equals(inputsBefore[2], v.toFloatArray());
            return new Outcome(
                    Accuracy.relativeError(out, ref),
                    Accuracy.forwardTolerance(outType, q, k, options),
                    Accuracy.relativeError(lse, refLse),
                    Layout.firstChangedGap(out, outBefore),
                    unchanged);
        }
    }

    /** Whether the native-memory layouts of this case come from a confined arena. */
    public boolean confinedArena() {
        return (seed & 1) == 1;
    }

    /** An LSE view over every third float of a larger buffer. */
    private static Tensor stridedLse(int b, int h, int s) {
        float[] data = new float[b * h * s * 3];
        return Tensor.of(MemorySegment.ofArray(data), DType.F32, new long[] {b, h, s, 1}, new long[] {
            (long) h * s * 3, (long) s * 3, 3, 1
        });
    }

    @Override
    public String toString() {
        return "case seed " + seed + ": B " + batch + ", Hq " + queryHeads() + ", Hkv " + kvHeads + ", Sq " + queryLen
                + ", Sk " + keyLen + ", D " + headDim + ", Dv " + valueDim + ", q " + qType + ", kv " + kvType
                + ", out "
                + outType + ", layouts " + Arrays.toString(layouts) + (confinedArena() ? " (confined)" : "")
                + (stridedLse ? ", strided lse" : "") + ", "
                + options;
    }

    private static int pick(SplittableRandom rnd, int[] values) {
        return values[rnd.nextInt(values.length)];
    }

    private static float pick(SplittableRandom rnd, float[] values) {
        return values[rnd.nextInt(values.length)];
    }

    private static DType pickType(SplittableRandom rnd) {
        int r = rnd.nextInt(5);
        return r < 2 ? DType.F16 : r < 4 ? DType.BF16 : DType.F32;
    }
}
