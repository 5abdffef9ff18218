package dev.aule.bench;

import dev.aule.AttentionOptions;
import dev.aule.Tensor;
import dev.aule.mask.BlockMask;
import dev.aule.mask.MaskMod;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Setup;

/**
 * Forward with programmable masks against the same shape without (B = 1, H = 4, Sq = Sk = seq, F32):
 * {@code none}; {@code document8}, eight equal packed documents through a {@link BlockMask} (7/8 of the
 * tiles skipped); {@code causal}, the built-in option; {@code causalMaskMod}, {@link MaskMod#causal()}
 * through a BlockMask, which should cost about what the built-in does. BlockMasks are built once in
 * the setup, as a caller reusing them across calls would.
 */
public class MaskBenchmark extends AttentionInputs {
    static final int BATCH = 1;
    static final int HEADS = 4;
    static final int DOCUMENTS = 8;

    @Param({"8192"})
    public int seq;

    @Param({"64"})
    public int headDim;

    @Param({"none", "document8", "causal", "causalMaskMod"})
    public String mask;

    @Param({"cpu"})
    public String backend;

    @Setup
    public void setUp() {
        prepare(backend, options(mask, seq), HEADS, HEADS, seq, seq, headDim);
    }

    static AttentionOptions options(String mask, int seq) {
        return switch (mask) {
            case "none" -> AttentionOptions.defaults();
            case "causal" -> AttentionOptions.builder().causal(true).build();
            case "causalMaskMod" ->
                AttentionOptions.builder()
                        .blockMask(BlockMask.of(MaskMod.causal(), seq, seq))
                        .build();
            case "document8" ->
                AttentionOptions.builder()
                        .blockMask(BlockMask.of(MaskMod.document(documents(seq)), seq, seq))
                        .build();
            default -> throw new IllegalArgumentException("mask: unknown " + mask);
        };
    }

    /** {@link #DOCUMENTS} equal documents packed into one sequence. */
    static int[] documents(int seq) {
        int[] ids = new int[seq];
        for (int i = 0; i < seq; i++) {
            ids[i] = (int) ((long) i * DOCUMENTS / seq);
        }
        return ids;
    }

    /** Contract FLOPs: {@code 4 B H D} times the visible pairs of the mask. */
    static double flops(String mask, int seq, int headDim) {
        double s = seq;
        double pairs = switch (mask) {
            case "causal", "causalMaskMod" -> s * (s + 1) / 2;
            case "document8" -> s * s / DOCUMENTS;
            default -> s * s;
        };
        return 4.0 * BATCH * HEADS * headDim * pairs;
    }

    @Benchmark
    public Tensor masked() {
        impl.forward(q, k, v, out, null, options);
        return out;
    }
}
