package dev.aule.bench;

import dev.aule.AttentionOptions;
import dev.aule.spi.Visibility;

import java.util.Locale;

/**
 * One prefill shape of a sweep: B = 1, {@code heads} query and KV heads, Sq = Sk = {@code seq}, F32.
 *
 * @param heads   heads H (query and key/value)
 * @param seq     sequence length S of queries and keys
 * @param headDim head dim D of q, k and v
 * @param causal  causal masking
 */
public record BenchShape(int heads, int seq, int headDim, boolean causal) {
    public BenchShape {
        if (heads < 1 || seq < 1 || headDim < 1) {
            throw new IllegalArgumentException(
                    "heads, seq, headDim: must be positive, got " + heads + ", " + seq + ", " + headDim);
        }
    }

    /** The contract's forward FLOPs: {@code 4 * H * D * visible pairs} (causal counts only visible pairs). */
    public double flops() {
        long pairs = Visibility.of(
                        seq, seq, AttentionOptions.builder().causal(causal).build())
                .pairs();
        return 4.0 * heads * headDim * pairs;
    }

    /** Bytes of q, k, v and out (F32). */
    public long ioBytes() {
        return 4L * heads * seq * headDim * Float.BYTES;
    }

    /** "H=8 S=2048 D=64 causal". */
    public String label() {
        return String.format(Locale.ROOT, "H=%d S=%d D=%d %s", heads, seq, headDim, causal ? "causal" : "full");
    }
}
