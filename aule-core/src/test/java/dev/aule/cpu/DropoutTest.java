package dev.aule.cpu;

import dev.aule.Attention;
import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Gradients;
import dev.aule.Tensor;
import dev.aule.spi.Accuracy;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.AttentionShape;
import dev.aule.spi.BackwardInputs;
import dev.aule.spi.Capabilities;
import dev.aule.spi.Dropout;
import dev.aule.testing.BackwardCases;
import dev.aule.testing.BackwardCases.Case;
import dev.aule.testing.BackwardCases.Inputs;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.EnumSet;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Dropout on the cpu backend (vector and scalar) and the reference: the same keep bits as {@link Dropout}'s
 * specification, the undropped LSE, gradients against the float64 reference, and the rules of the option.
 */
class DropoutTest {
    private static final double F32_BOUND = 1e-4;
    private final AttentionBackend reference = Backends.get("reference");
    private final CpuBackend cpu = new CpuBackend();
    private final CpuBackend scalar = new CpuBackend(new ScalarTileMath());

    /**
     * With q = 0 every visible key weighs 1/n, and with v the identity (key j's value is e_j) out[i][j] is the
     * pair's dropout factor over n: the kept pattern, read off each backend and compared with the specification.
     * The shapes cover GQA, windows (unaligned key ranges), a key side split across workers (one query row) and
     * keys past the first groups of 32.
     */
    @Test
    void everyBackendKeepsTheSpecifiedPairs() {
        record Shape(int batch, int heads, int kvHeads, int queryLen, int keyLen, AttentionOptions.Builder options) {}
        List<Shape> shapes = List.of(
                new Shape(2, 4, 2, 70, 300, AttentionOptions.builder()),
                new Shape(1, 2, 1, 33, 97, AttentionOptions.builder().window(20, 13)),
                new Shape(3, 2, 2, 1, 500, AttentionOptions.builder()),
                new Shape(1, 1, 1, 130, 130, AttentionOptions.builder().causal(true)));
        for (Shape s : shapes) {
            AttentionOptions options = s.options().dropout(0.3f, 1234567890123L).build();
            Tensor q = Tensor.allocate(DType.F32, s.batch(), s.heads(), s.queryLen(), 16);
            Tensor k = Tensors.random(new SplittableRandom(1), DType.F32, s.batch(), s.kvHeads(), s.keyLen(), 16);
            Tensor v = Tensor.allocate(DType.F32, s.batch(), s.kvHeads(), s.keyLen(), s.keyLen());
            for (int b = 0; b < s.batch(); b++) {
                for (int h = 0; h < s.kvHeads(); h++) {
                    for (int j = 0; j < s.keyLen(); j++) {
                        v.set(b, h, j, j, 1f);
                    }
                }
            }
            var visibility = dev.aule.spi.Visibility.of(s.queryLen(), s.keyLen(), options);
            for (AttentionBackend backend : List.of(cpu, scalar, reference)) {
                Tensor out = Tensor.allocate(DType.F32, s.batch(), s.heads(), s.queryLen(), s.keyLen());
                backend.forward(q, k, v, out, null, options);
                for (int b = 0; b < s.batch(); b++) {
                    for (int h = 0; h < s.heads(); h++) {
                        for (int i = 0; i < s.queryLen(); i++) {
                            long row = Dropout.rowKey(options.dropoutSeed(), b, h, i);
                            int first = visibility.first(i);
                            int last = visibility.last(i);
                            for (int j = 0; j < s.keyLen(); j++) {
                                boolean visible = j >= first && j <= last;
                                boolean kept = visible && Dropout.keep(row, j, Dropout.threshold(0.3f));
                                float expected = kept ? (float) (1 / 0.7 / (last - first + 1)) : 0f;
                                float actual = out.get(b, h, i, j);
                                assertEquals(
                                        expected,
                                        actual,
                                        1e-6f * Math.max(1f, expected),
                                        backend.name() + " " + options + " at " + b + "," + h + "," + i + "," + j);
                            }
                        }
                    }
                }
            }
        }
    }

    /** The specification keeps a fraction near {@code 1 - p}: over 2^20 pairs, within 6 standard deviations. */
    @Test
    void theKeptFractionIsNearOneMinusP() {
        for (float p : new float[] {0.1f, 0.5f, 0.9f}) {
            int threshold = Dropout.threshold(p);
            long kept = 0;
            int n = 0;
            for (int row = 0; row < 1024; row++) {
                long key = Dropout.rowKey(99, row % 3, row % 5, row);
                for (int j = 0; j < 1024; j++, n++) {
                    kept += Dropout.keep(key, j, threshold) ? 1 : 0;
                }
            }
            double fraction = (double) kept / n;
            double sigma = Math.sqrt(p * (1 - p) / n);
            assertTrue(Math.abs(fraction - (1 - p)) < 6 * sigma, "p " + p + ": kept " + fraction);
        }
    }

    @Test
    void theForwardMatchesTheReferenceAndKeepsTheUndroppedLse() {
        SplittableRandom rnd = new SplittableRandom(8);
        for (int n = 0; n < 20; n++) {
            Case c = BackwardCases.random(rnd, DType.F32);
            AttentionOptions options =
                    c.options().toBuilder().dropout(0.05f + 0.2f * (n % 4), n).build();
            Tensor q = Tensors.random(rnd, DType.F32, c.batch(), c.queryHeads(), c.queryLen(), c.headDim());
            Tensor k = Tensors.random(rnd, DType.F32, c.batch(), c.kvHeads(), c.keyLen(), c.headDim());
            Tensor v = Tensors.random(rnd, DType.F32, c.batch(), c.kvHeads(), c.keyLen(), c.valueDim());
            Tensor[] expected = forward(reference, q, k, v, options);
            Tensor[] undropped = forward(cpu, q, k, v, c.options());
            for (AttentionBackend backend : List.of(cpu, scalar)) {
                Tensor[] actual = forward(backend, q, k, v, options);
                double error = Accuracy.relativeError(actual[0], expected[0]);
                assertTrue(error < Accuracy.F32_TOLERANCE, backend.name() + " " + c + ": error " + error);
                if (backend == cpu) {
                    assertArrayEquals(undropped[1].toFloatArray(), actual[1].toFloatArray(), c + " lse");
                }
            }
        }
    }

    /**
     * Decode shapes split a row's keys across workers (flash-decoding, above 1024 keys); with a window the split
     * ranges start off the vector grid (the per-lane hashing path). Each part draws its own keys' bits.
     */
    @Test
    void splitKeysDrawTheSameBits() {
        SplittableRandom rnd = new SplittableRandom(12);
        for (AttentionOptions options : List.of(
                AttentionOptions.builder().dropout(0.3f, 5).build(),
                AttentionOptions.builder()
                        .causal(true)
                        .window(1500, 0)
                        .dropout(0.5f, 6)
                        .build())) {
            Tensor q = Tensors.random(rnd, DType.F32, 1, 4, 1, 32);
            Tensor k = Tensors.random(rnd, DType.F32, 1, 2, 2500, 32);
            Tensor v = Tensors.random(rnd, DType.F32, 1, 2, 2500, 32);
            Tensor expected = forward(reference, q, k, v, options)[0];
            for (AttentionBackend backend : List.of(cpu, scalar)) {
                double error = Accuracy.relativeError(forward(backend, q, k, v, options)[0], expected);
                assertTrue(error < Accuracy.F32_TOLERANCE, backend.name() + " " + options + ": error " + error);
            }
        }
        assertTrue(ForwardPlan.of(4, 2, 32, 32, dev.aule.spi.Visibility.of(1, 2500, AttentionOptions.defaults()))
                        .splits()
                > 1);
    }

    @Test
    void gradientsMatchTheReference() {
        SplittableRandom rnd = new SplittableRandom(81);
        for (int n = 0; n < 24; n++) {
            Case c = BackwardCases.random(rnd, DType.F32);
            c = c.withOptions(c.options().toBuilder()
                    .dropout(0.1f + 0.25f * (n % 3), 77 + n)
                    .build());
            BackwardCases.assertMatchesReference(n % 4 == 3 ? scalar : cpu, c, rnd, F32_BOUND);
        }
        // Several key chunks (dQ from partial sums), GQA, a half-precision storage.
        BackwardCases.assertMatchesReference(
                cpu,
                new Case(
                        DType.F32,
                        1,
                        4,
                        2,
                        300,
                        260,
                        64,
                        32,
                        AttentionOptions.builder().causal(true).dropout(0.2f, 5).build()),
                rnd,
                F32_BOUND);
        BackwardCases.assertMatchesReference(
                cpu,
                new Case(
                        DType.BF16,
                        2,
                        2,
                        1,
                        70,
                        90,
                        32,
                        32,
                        AttentionOptions.builder().dropout(0.4f, 6).build()),
                rnd,
                2e-2);
    }

    /** One worker or all: bitwise the same gradients; the same seed the same output, another seed another one. */
    @Test
    void deterministicPerSeed() {
        SplittableRandom rnd = new SplittableRandom(3);
        Case c = new Case(
                DType.F32,
                2,
                4,
                2,
                200,
                333,
                64,
                48,
                AttentionOptions.builder().dropout(0.25f, 42).build());
        Inputs in = BackwardCases.inputs(rnd, c, cpu);
        Gradients single = backward(in, c.options(), 1);
        Gradients all = backward(in, c.options(), Integer.MAX_VALUE);
        assertArrayEquals(single.dq().toFloatArray(), all.dq().toFloatArray());
        assertArrayEquals(single.dk().toFloatArray(), all.dk().toFloatArray());
        assertArrayEquals(single.dv().toFloatArray(), all.dv().toFloatArray());

        Tensor again = forward(cpu, in.q(), in.k(), in.v(), c.options())[0];
        assertArrayEquals(in.out().toFloatArray(), again.toFloatArray(), "same seed");
        Tensor other = forward(
                cpu,
                in.q(),
                in.k(),
                in.v(),
                c.options().toBuilder().dropout(0.25f, 43).build())[0];
        assertFalse(java.util.Arrays.equals(in.out().toFloatArray(), other.toFloatArray()), "another seed");
    }

    /** p = 0 is off: the options equal the defaults, so every path is the one without dropout. */
    @Test
    void zeroIsOff() {
        AttentionOptions off = AttentionOptions.builder().dropout(0f, 99).build();
        assertEquals(AttentionOptions.defaults(), off);
        assertFalse(off.hasDropout());
    }

    @Test
    void badProbabilitiesAreRejected() {
        for (float p : new float[] {-0.1f, 1f, 1.5f, Float.NaN, Float.POSITIVE_INFINITY}) {
            IllegalArgumentException e = assertThrows(
                    IllegalArgumentException.class,
                    () -> AttentionOptions.builder().dropout(p, 1));
            assertTrue(e.getMessage().startsWith("dropout: p must be in [0, 1)"), e.getMessage());
        }
    }

    /** A backend without the DROPOUT feature rejects it, and auto-selection passes such a backend by. */
    @Test
    void backendsWithoutDropoutRejectIt() {
        AttentionOptions options = AttentionOptions.builder().dropout(0.1f, 1).build();
        Tensor q = Tensor.allocate(DType.F32, 1, 1, 4, 16);
        Capabilities plain = Capabilities.of(256, EnumSet.allOf(DType.class), Capabilities.Feature.BACKWARD);
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> AttentionShape.ofInputs(q, q, q, options, plain));
        assertTrue(e.getMessage().startsWith("options.dropout: dropout is not supported"), e.getMessage());
        assertTrue(cpu.capabilities().dropout() && reference.capabilities().dropout());
        Tensor out = Attention.forward(q, q, q, options); // whatever is installed, a backend that has dropout runs it
        assertEquals(4, out.seqLen());
    }

    /** Dropout is a training feature: the cache entry points refuse it. */
    @Test
    void cachedAndPagedCallsRejectDropout() {
        AttentionOptions options = AttentionOptions.builder().dropout(0.1f, 1).build();
        Tensor q = Tensor.allocate(DType.F32, 1, 1, 1, 16);
        Tensor cache = Tensor.allocate(DType.F32, 1, 1, 8, 16);
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class, () -> Attention.forwardCached(q, cache, cache, new int[] {4}, options));
        assertTrue(e.getMessage().startsWith("options.dropout: dropout is a training feature"), e.getMessage());
        assertThrows(
                IllegalArgumentException.class,
                () -> Attention.forwardPaged(q, cache, cache, new int[][] {{0}}, new int[] {4}, options));
    }

    private static Tensor[] forward(AttentionBackend backend, Tensor q, Tensor k, Tensor v, AttentionOptions options) {
        Tensor out = Tensor.allocate(DType.F32, q.batch(), q.heads(), q.seqLen(), v.headDim());
        Tensor lse = Tensor.allocate(DType.F32, q.batch(), q.heads(), q.seqLen(), 1);
        backend.forward(q, k, v, out, lse, options);
        return new Tensor[] {out, lse};
    }

    private Gradients backward(Inputs in, AttentionOptions options, int workers) {
        Gradients g = BackwardCases.poisoned(in, DType.F32);
        cpu.backward(new BackwardInputs(in.q(), in.k(), in.v(), in.out(), in.dOut(), in.lse()), g, options, workers);
        return g;
    }
}
