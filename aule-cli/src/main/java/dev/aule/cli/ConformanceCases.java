package dev.aule.cli;

import dev.aule.AttentionOptions;

import java.util.List;
import java.util.Set;

import static dev.aule.DType.BF16;
import static dev.aule.DType.F16;
import static dev.aule.cli.ConformanceCase.of;
import static dev.aule.cli.TensorLayout.BSHD;
import static dev.aule.cli.TensorLayout.OFF_HEAP;

/**
 * The conformance sweep: every rule of the contract's semantics on shapes small enough for the
 * float64 reference. Lengths are odd or straddle the CPU kernel's 64-row tiles on purpose, and a
 * few decode shapes are long enough for the key range to be split across cores.
 */
final class ConformanceCases {
    /** The cases {@code --quick} keeps: one per feature, the cheapest of each. */
    static final Set<String> QUICK = Set.of(
            "len-1",
            "len-17-causal",
            "sq>sk-masked-rows",
            "d80",
            "dv<d",
            "gqa-8:1",
            "window-both",
            "softcap",
            "alibi-causal",
            "f16-causal-gqa",
            "bf16-causal-gqa",
            "bshd-view",
            "off-heap",
            "decode-split");

    private ConformanceCases() {}

    static List<ConformanceCase> all() {
        return List.of(
                // odd lengths
                of("len-1", 1, 4, 2, 1, 1, 64),
                of("len-3", 1, 4, 2, 3, 3, 64),
                of("len-17", 1, 4, 2, 17, 17, 64),
                of("len-17-causal", 1, 4, 2, 17, 17, 64).options(causal()),
                of("len-127-causal", 1, 4, 2, 127, 127, 64).options(causal()),
                of("len-256-causal-b2", 2, 4, 2, 256, 256, 64).options(causal()),
                // Sq != Sk both ways
                of("sq<sk", 1, 4, 2, 17, 100, 64),
                of("sq<sk-causal", 1, 4, 2, 17, 100, 64).options(causal()),
                of("sq>sk", 1, 4, 2, 100, 17, 64),
                // head dims
                of("d16", 1, 4, 2, 70, 70, 16).options(causal()),
                of("d32", 1, 4, 2, 70, 70, 32).options(causal()),
                of("d64", 1, 4, 2, 70, 70, 64).options(causal()),
                of("d80", 1, 4, 2, 70, 70, 80).options(causal()),
                of("d96", 1, 4, 2, 70, 70, 96).options(causal()),
                of("d128", 1, 4, 2, 70, 70, 128).options(causal()),
                of("d256", 1, 4, 2, 70, 70, 256).options(causal()),
                of("d256-long", 1, 2, 1, 256, 256, 256).options(causal()),
                of("dv<d", 1, 4, 2, 33, 47, 64).valueDim(32).options(causal()),
                of("dv>d", 1, 4, 2, 33, 47, 32).valueDim(96),
                // head grouping
                of("gqa-8:1", 1, 16, 2, 96, 96, 64).options(causal()),
                of("mqa", 1, 8, 1, 96, 96, 64).options(causal()),
                of("mha", 1, 4, 4, 65, 65, 64),
                // windows
                of("window-both", 1, 4, 2, 200, 200, 64).options(window(16, 8)),
                of("window-left-only", 1, 4, 2, 200, 200, 64).options(window(32, -1)),
                of("window-right-only", 1, 4, 2, 200, 200, 64).options(window(-1, 16)),
                of("window-causal", 1, 4, 2, 200, 200, 64).options(causal().window(31, -1)),
                of("window-diagonal-only", 1, 4, 2, 77, 77, 64).options(window(0, 0)),
                of("window-sq<sk", 1, 4, 2, 50, 180, 64).options(window(20, 5)),
                // score transforms
                of("softcap", 1, 4, 2, 90, 90, 64)
                        .options(AttentionOptions.builder().scale(1f).softcap(2f)),
                of("softcap-causal", 1, 4, 2, 90, 90, 64).options(causal().softcap(30f)),
                of("alibi-causal", 1, 4, 2, 90, 90, 64).options(causal().alibiSlopes(alibi(4))),
                of("alibi-sq<sk", 1, 8, 2, 40, 120, 64)
                        .options(AttentionOptions.builder().alibiSlopes(alibi(8))),
                of("scale-2", 1, 4, 2, 90, 90, 64)
                        .options(AttentionOptions.builder().scale(2f)),
                of("scale-0.05", 1, 4, 2, 90, 90, 64)
                        .options(AttentionOptions.builder().scale(0.05f)),
                of("scale-negative", 1, 4, 2, 90, 90, 64)
                        .options(AttentionOptions.builder().scale(-0.5f)),
                // rows that see no key must come out 0 with LSE -inf
                of("sq>sk-masked-rows", 1, 4, 2, 40, 16, 64).options(causal()),
                of("masked-first-tile", 1, 4, 2, 130, 3, 64).options(causal()),
                of("window-masked-rows", 1, 4, 2, 64, 20, 64).options(window(4, 2)),
                // storage types
                of("f16-causal-gqa", 1, 8, 2, 77, 77, 64).dtype(F16).options(causal()),
                of("f16-window", 1, 4, 2, 120, 120, 128).dtype(F16).options(window(24, 0)),
                of("bf16-causal-gqa", 1, 8, 2, 77, 77, 64).dtype(BF16).options(causal()),
                of("bf16-alibi-softcap", 1, 4, 2, 60, 90, 96)
                        .dtype(BF16)
                        .options(AttentionOptions.builder().softcap(20f).alibiSlopes(alibi(4))),
                // memory layouts
                of("bshd-view", 2, 8, 2, 45, 45, 64).layout(BSHD).options(causal()),
                of("bshd-window-dv", 1, 4, 1, 70, 90, 32)
                        .valueDim(64)
                        .layout(BSHD)
                        .options(window(10, 10)),
                of("bshd-f16", 1, 8, 4, 66, 66, 64).dtype(F16).layout(BSHD).options(causal()),
                of("off-heap", 2, 8, 2, 45, 45, 64).layout(OFF_HEAP).options(causal()),
                of("off-heap-bf16", 1, 4, 2, 70, 70, 80)
                        .dtype(BF16)
                        .layout(OFF_HEAP)
                        .options(causal()),
                // decode: few rows, many keys, so the CPU backend splits the key range across cores
                of("decode-split", 1, 8, 1, 1, 2048, 128),
                of("decode-causal", 1, 8, 2, 1, 1500, 64).options(causal()),
                of("decode-4-window", 1, 8, 2, 4, 2048, 64).options(causal().window(700, -1)),
                // everything at once
                of("all-options", 2, 8, 2, 99, 131, 80)
                        .valueDim(48)
                        .dtype(BF16)
                        .options(
                                causal().window(40, -1).scale(0.2f).softcap(15f).alibiSlopes(alibi(8))),
                of("all-options-f32", 3, 8, 1, 129, 100, 96)
                        .valueDim(112)
                        .options(window(30, 3).scale(0.3f).softcap(8f).alibiSlopes(alibi(8))));
    }

    static List<ConformanceCase> quick() {
        return all().stream().filter(c -> QUICK.contains(c.name())).toList();
    }

    private static AttentionOptions.Builder causal() {
        return AttentionOptions.builder().causal(true);
    }

    private static AttentionOptions.Builder window(int left, int right) {
        return AttentionOptions.builder().window(left, right);
    }

    /** The slopes ALiBi prescribes for {@code heads} heads: the geometric sequence 2^(-8h/H), h = 1..H. */
    static float[] alibi(int heads) {
        float[] slopes = new float[heads];
        for (int h = 0; h < heads; h++) {
            slopes[h] = (float) Math.pow(2, -8.0 * (h + 1) / heads);
        }
        return slopes;
    }
}
