package dev.aule.cpu;

import dev.aule.Attention;
import dev.aule.AttentionOptions;
import dev.aule.AttentionResult;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Gradients;
import dev.aule.Tensor;
import dev.aule.mask.MaskMod;
import dev.aule.spi.Accuracy;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.BackwardInputs;
import dev.aule.spi.PackedSequences;
import dev.aule.testing.BackwardCases;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The backward of packed variable-length attention: each sequence's gradients are those of its own dense backward
 * (batch index = sequence index for dropout and per-batch ALiBi), cpu agrees with the reference, nothing crosses a
 * boundary, the result does not depend on the thread count, and bad offsets are rejected before anything is written.
 */
class VarlenBackwardTest {
    private static final double BOUND = 1e-4;
    private final AttentionBackend reference = Backends.get("reference");
    private final CpuBackend cpu = new CpuBackend();
    private final CpuBackend scalar = new CpuBackend(new ScalarTileMath());

    /** A packed call: inputs, offsets, options, and the forward's results. */
    private record Packed(BackwardInputs in, int[] cuQ, int[] cuK, AttentionOptions options) {}

    private static Packed random(SplittableRandom rnd, AttentionBackend forward) {
        int[][] heads = {{1, 1}, {2, 1}, {4, 2}, {2, 2}};
        int[] h = heads[rnd.nextInt(heads.length)];
        int d = new int[] {16, 32, 48}[rnd.nextInt(3)];
        int n = 1 + rnd.nextInt(4);
        boolean self = rnd.nextBoolean();
        int[] cuQ = new int[n + 1];
        int[] cuK = new int[n + 1];
        for (int s = 0; s < n; s++) {
            int rows = rnd.nextInt(6) == 0 ? 0 : 1 + rnd.nextInt(70);
            int keys = self ? rows : rnd.nextInt(6) == 0 ? 0 : 1 + rnd.nextInt(70);
            cuQ[s + 1] = cuQ[s] + rows;
            cuK[s + 1] = cuK[s] + keys;
        }
        if (cuQ[n] == 0) {
            cuQ[n] = 1;
        }
        if (cuK[n] == 0) {
            cuK[n] = 1;
        }
        AttentionOptions.Builder b = BackwardCases.randomOptions(rnd, h[0], d).toBuilder();
        if (rnd.nextBoolean()) {
            b.dropout(0.25f, rnd.nextLong());
        }
        if (rnd.nextInt(3) == 0) {
            float[][] slopes = new float[n][h[0]];
            for (float[] row : slopes) {
                for (int x = 0; x < row.length; x++) {
                    row[x] = (float) (rnd.nextDouble() * 0.3);
                }
            }
            b.alibiSlopesPerBatch(slopes);
        }
        AttentionOptions options = b.build();
        Tensor q = Tensors.random(rnd, DType.F32, 1, h[0], cuQ[n], d);
        Tensor k = Tensors.random(rnd, DType.F32, 1, h[1], cuK[n], d);
        Tensor v = Tensors.random(rnd, DType.F32, 1, h[1], cuK[n], d);
        Tensor dOut = Tensors.random(rnd, DType.F32, 1, h[0], cuQ[n], d);
        Tensor out = Tensor.allocate(DType.F32, 1, h[0], cuQ[n], d);
        Tensor lse = Tensor.allocate(DType.F32, 1, h[0], cuQ[n], 1);
        forward.forwardVarlen(q, k, v, new PackedSequences(cuQ, cuK), out, lse, options);
        return new Packed(new BackwardInputs(q, k, v, out, dOut, lse), cuQ, cuK, options);
    }

    private static Gradients backward(AttentionBackend backend, Packed p) {
        Gradients g = BackwardCases.poisoned(
                new BackwardCases.Inputs(p.in().q(), p.in().k(), p.in().v(), p.in().out(), p.in().lse(), p.in().dOut()),
                DType.F32);
        backend.backwardVarlen(p.in(), new PackedSequences(p.cuQ(), p.cuK()), g, p.options());
        return g;
    }

    @Test
    void cpuMatchesTheReference() {
        SplittableRandom rnd = new SplittableRandom(31);
        for (int n = 0; n < 24; n++) {
            AttentionBackend backend = n % 4 == 3 ? scalar : cpu;
            Packed p = random(rnd, backend);
            double error = BackwardCases.error(backward(backend, p), backward(reference, p));
            assertTrue(error < BOUND, backend.name() + " " + p.options() + ": error " + error);
        }
    }

    /**
     * Sequence s of a packed call (its forward output and its gradients) equals batch entry s of a dense call whose
     * other entries are anything: the same options (dropout's bits and per-batch slopes included) apply with the same
     * batch index.
     */
    @Test
    void eachSequenceEqualsItsDenseBackward() {
        SplittableRandom rnd = new SplittableRandom(32);
        for (int n = 0; n < 8; n++) {
            Packed p = random(rnd, cpu);
            Gradients packed = backward(cpu, p);
            int sequences = p.cuQ().length - 1;
            for (int s = 0; s < sequences; s++) {
                int q0 = p.cuQ()[s];
                int rows = p.cuQ()[s + 1] - q0;
                int k0 = p.cuK()[s];
                int keys = p.cuK()[s + 1] - k0;
                if (rows == 0 || keys == 0) {
                    if (rows > 0) {
                        assertZero(packed.dq().sequence(0, q0, rows), "dq of a sequence without keys");
                    }
                    if (keys > 0) {
                        assertZero(packed.dk().sequence(0, k0, keys), "dk of a sequence without rows");
                        assertZero(packed.dv().sequence(0, k0, keys), "dv of a sequence without rows");
                    }
                    continue;
                }
                AttentionOptions options = p.options();
                if (options.alibiBatches() > 0) {
                    options = options.toBuilder()
                            .alibiSlopesPerBatch(java.util.Arrays.copyOf(options.alibiSlopesPerBatch(), s + 1))
                            .build();
                }
                // Batch entry s of s + 1 holds the sequence; the entries before it are random.
                Tensor q = entry(rnd, p.in().q().sequence(0, q0, rows), s);
                Tensor k = entry(rnd, p.in().k().sequence(0, k0, keys), s);
                Tensor v = entry(rnd, p.in().v().sequence(0, k0, keys), s);
                Tensor dOut = entry(rnd, p.in().dOut().sequence(0, q0, rows), s);
                AttentionResult fwd = Attention.forwardWithLse(q, k, v, options);
                Gradients dense = Attention.backward(q, k, v, fwd.out(), dOut, fwd.lse(), options);
                String where = p.options() + " sequence " + s;
                assertTrue(
                        Accuracy.relativeError(
                                        p.in().out().sequence(0, q0, rows),
                                        fwd.out().sequence(s, 0, rows))
                                < Accuracy.F32_TOLERANCE,
                        where + " out (the forward)");
                assertTrue(
                        Accuracy.relativeError(
                                        packed.dq().sequence(0, q0, rows),
                                        dense.dq().sequence(s, 0, rows))
                                < BOUND,
                        where + " dq");
                assertTrue(
                        Accuracy.relativeError(
                                        packed.dk().sequence(0, k0, keys),
                                        dense.dk().sequence(s, 0, keys))
                                < BOUND,
                        where + " dk");
                assertTrue(
                        Accuracy.relativeError(
                                        packed.dv().sequence(0, k0, keys),
                                        dense.dv().sequence(s, 0, keys))
                                < BOUND,
                        where + " dv");
            }
        }
    }

    @Test
    void oneWorkerAndAllAgreeBitwise() {
        SplittableRandom rnd = new SplittableRandom(33);
        for (int n = 0; n < 4; n++) {
            Packed p = random(rnd, cpu);
            Gradients single = poisoned(p);
            cpu.backwardVarlen(p.in(), new PackedSequences(p.cuQ(), p.cuK()), single, p.options(), 1);
            Gradients all = poisoned(p);
            cpu.backwardVarlen(p.in(), new PackedSequences(p.cuQ(), p.cuK()), all, p.options(), Integer.MAX_VALUE);
            assertArrayEquals(single.dq().toFloatArray(), all.dq().toFloatArray());
            assertArrayEquals(single.dk().toFloatArray(), all.dk().toFloatArray());
            assertArrayEquals(single.dv().toFloatArray(), all.dv().toFloatArray());
            // The public entry point: the best backend with a packed backward (cpu here).
            Gradients api = Attention.backwardVarlen(
                    p.in().q(),
                    p.in().k(),
                    p.in().v(),
                    p.in().out(),
                    p.in().dOut(),
                    p.in().lse(),
                    p.cuQ(),
                    p.cuK(),
                    p.options());
            assertTrue(BackwardCases.error(api, single) < BOUND, "Attention.backwardVarlen");
        }
    }

    /** One bad input per rule; the gradients stay as they were (NaN). */
    @Test
    void badCallsAreRejectedAndNothingIsWritten() {
        Packed p = random(new SplittableRandom(34), cpu);
        int total = p.in().q().seqLen();
        int totalK = p.in().k().seqLen();
        List<int[][]> offsets = List.of(
                new int[][] {{1, total}, {0, totalK}}, // not from 0
                new int[][] {{0, total + 1}, {0, totalK}}, // not to the total
                new int[][] {{0, total}, {0, totalK, totalK}}, // lengths differ
                new int[][] {{0}, {0}}); // too short
        for (AttentionBackend backend : List.of(cpu, reference)) {
            for (int[][] cu : offsets) {
                Gradients g = poisoned(p);
                assertThrows(
                        IllegalArgumentException.class,
                        () -> backend.backwardVarlen(p.in(), new PackedSequences(cu[0], cu[1]), g, p.options()));
                assertTrue(Float.isNaN(g.dq().get(0, 0, 0, 0)) && Float.isNaN(g.dk().get(0, 0, 0, 0)), "written");
            }
            if (total >= 2) {
                int[] decreasing = {0, total, total - 1, total};
                int[] keys = {0, totalK, totalK, totalK};
                IllegalArgumentException e = assertThrows(
                        IllegalArgumentException.class,
                        () -> backend.backwardVarlen(
                                p.in(), new PackedSequences(decreasing, keys), poisoned(p), p.options()));
                assertTrue(e.getMessage().startsWith("cuSeqlensQ[2]"), e.getMessage());
            }
            AttentionOptions masked =
                    p.options().toBuilder().maskMod(MaskMod.causal()).build();
            assertThrows(
                    IllegalArgumentException.class,
                    () -> backend.backwardVarlen(p.in(), new PackedSequences(p.cuQ(), p.cuK()), poisoned(p), masked));
            Tensor wrong = Tensor.allocate(DType.F32, 1, p.in().q().heads(), total, 1);
            BackwardInputs badDOut =
                    new BackwardInputs(p.in().q(), p.in().k(), p.in().v(), p.in().out(), wrong, p.in().lse());
            IllegalArgumentException e = assertThrows(
                    IllegalArgumentException.class,
                    () -> backend.backwardVarlen(
                            badDOut, new PackedSequences(p.cuQ(), p.cuK()), poisoned(p), p.options()));
            assertTrue(e.getMessage().startsWith("dOut: shape"), e.getMessage());
        }
        // A backend without it says so.
        AttentionBackend plain = new AttentionBackend() {
            @Override
            public String name() {
                return "plain";
            }

            @Override
            public String description() {
                return "forward only";
            }

            @Override
            public int priority() {
                return 0;
            }

            @Override
            public dev.aule.spi.Availability availability() {
                return dev.aule.spi.Availability.available("test");
            }

            @Override
            public dev.aule.spi.Capabilities capabilities() {
                return dev.aule.spi.Capabilities.of(64, java.util.EnumSet.allOf(DType.class));
            }

            @Override
            public void forward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, AttentionOptions options) {}
        };
        assertThrows(
                UnsupportedOperationException.class,
                () -> plain.backwardVarlen(p.in(), new PackedSequences(p.cuQ(), p.cuK()), poisoned(p), p.options()));
    }

    private static Gradients poisoned(Packed p) {
        return BackwardCases.poisoned(
                new BackwardCases.Inputs(p.in().q(), p.in().k(), p.in().v(), p.in().out(), p.in().lse(), p.in().dOut()),
                DType.F32);
    }

    /** A [s + 1, H, S, D] tensor whose entry s is {@code rows} and whose other entries are random. */
    private static Tensor entry(SplittableRandom rnd, Tensor rows, int s) {
        Tensor t = Tensors.random(rnd, DType.F32, s + 1, rows.heads(), rows.seqLen(), rows.headDim());
        float[] row = new float[rows.headDim()];
        for (int h = 0; h < rows.heads(); h++) {
            for (int i = 0; i < rows.seqLen(); i++) {
                rows.readRow(0, h, i, row, 0);
                t.writeRow(s, h, i, row, 0);
            }
        }
        return t;
    }

    private static void assertZero(Tensor t, String what) {
        for (float x : t.toFloatArray()) {
            assertTrue(x == 0f, what + ": " + x);
        }
    }
}
