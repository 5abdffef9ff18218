package dev.aule.bench;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.Tensor;

/** Checks a peer's output against the cpu backend's on the same inputs before anything is timed. */
final class PeerCheck {
    /** Largest accepted {@code |peer - cpu|}: F32 kernels that sum in different orders, outputs of magnitude <= 1. */
    static final float TOLERANCE = 1e-4f;

    private PeerCheck() {}

    /** The cpu backend's BHSD output for these inputs. */
    static float[] cpuOutput(Tensor q, Tensor k, Tensor v, boolean causal) {
        Tensor out = Inputs.zeros(q.batch(), q.heads(), q.seqLen(), v.headDim());
        Backends.get("cpu")
                .forward(
                        q,
                        k,
                        v,
                        out,
                        null,
                        AttentionOptions.builder().causal(causal).build());
        return out.toFloatArray();
    }

    /** Throws naming the peer and the first differing element unless every element is within {@link #TOLERANCE}. */
    static void requireEqual(String peer, float[] actual, float[] expected) {
        if (actual.length != expected.length) {
            throw new IllegalStateException(
                    peer + " output has " + actual.length + " elements, cpu " + expected.length);
        }
        for (int i = 0; i < actual.length; i++) {
            if (!(Math.abs(actual[i] - expected[i]) <= TOLERANCE)) {
                throw new IllegalStateException(
                        peer + " and cpu outputs differ at " + i + ": " + actual[i] + " vs " + expected[i]);
            }
        }
    }
}
