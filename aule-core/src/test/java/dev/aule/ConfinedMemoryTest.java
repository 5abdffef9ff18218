package dev.aule;

import dev.aule.spi.Accuracy;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.BackwardInputs;
import dev.aule.spi.TensorChecks;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Memory from {@code Arena.ofConfined()} may only be touched by its owner thread, so backends must
 * compute such calls on the calling thread rather than on their pools.
 */
class ConfinedMemoryTest {
    private static final long[] SHAPE = {1, 4, 130, 32};
    private static final long[] STRIDES = {4L * 130 * 32, 130 * 32, 32, 1};
    private static final long BYTES = 4L * 130 * 32 * Float.BYTES;

    @Test
    void confinedTensorsRunOnTheCallingThread() {
        SplittableRandom rnd = new SplittableRandom(5);
        AttentionOptions options = AttentionOptions.builder().causal(true).build();
        try (Arena arena = Arena.ofConfined()) {
            Tensor q = confined(arena, rnd);
            Tensor k = confined(arena, rnd);
            Tensor v = confined(arena, rnd);
            Tensor dOut = confined(arena, rnd);
            assertTrue(TensorChecks.isThreadConfined(q));
            assertFalse(TensorChecks.isThreadConfined(Tensor.allocate(DType.F32, 1, 1, 1, 1)));
            for (String name : new String[] {"cpu", "reference"}) {
                AttentionBackend backend = Backends.get(name);
                Tensor out = confined(arena, null);
                Tensor lse = Tensor.of(
                        arena.allocate(4L * 130 * Float.BYTES), DType.F32, new long[] {1, 4, 130, 1}, new long[] {
                            4L * 130, 130, 1, 1
                        });
                Tensor dq = confined(arena, null);
                Tensor dk = confined(arena, null);
                Tensor dv = confined(arena, null);
                backend.forward(q, k, v, out, lse, options);
                backend.backward(new BackwardInputs(q, k, v, out, dOut, lse), new Gradients(dq, dk, dv), options);

                Tensor ref = Tensor.allocate(DType.F32, 1, 4, 130, 32);
                Backends.get("reference").forward(copy(q), copy(k), copy(v), ref, null, options);
                assertTrue(Accuracy.relativeError(out, ref) < 1e-5, name + " forward");
                assertTrue(Float.isFinite(dq.get(0, 3, 129, 31)), name + " backward wrote dq");
            }
        }
    }

    private static Tensor confined(Arena arena, SplittableRandom rnd) {
        Tensor t = Tensor.of(arena.allocate(BYTES), DType.F32, SHAPE, STRIDES);
        if (rnd != null) {
            Tensors.fillRandom(rnd, t);
        } else {
            t.fill(Float.NaN);
        }
        return t;
    }

    private static Tensor copy(Tensor t) {
        return Tensor.of(t.toFloatArray(), t.batch(), t.heads(), t.seqLen(), t.headDim());
    }
}
