package dev.aule.cpu;

import dev.aule.Attention;
import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.Accuracy;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.AttentionShape;
import dev.aule.spi.Capabilities;
import dev.aule.spi.PackedSequences;
import dev.aule.testing.BackwardCases;
import dev.aule.testing.BackwardCases.Case;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.EnumSet;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * ALiBi slopes per (batch, query head), FlashAttention's {@code alibi_slopes} of shape {@code (batch, nheads)}: each
 * batch entry (each packed sequence, each cache entry) gets its own row, on cpu (vector and scalar) and reference.
 */
class AlibiPerBatchTest {
    private final AttentionBackend reference = Backends.get("reference");
    private final CpuBackend cpu = new CpuBackend();
    private final CpuBackend scalar = new CpuBackend(new ScalarTileMath());

    private static float[][] slopes(SplittableRandom rnd, int batch, int heads) {
        float[][] slopes = new float[batch][heads];
        for (float[] row : slopes) {
            for (int h = 0; h < heads; h++) {
                row[h] = (float) (rnd.nextDouble() * 0.5);
            }
        }
        return slopes;
    }

    /** Batch entry b of a per-batch call equals a call on that entry alone with row b as per-head slopes. */
    @Test
    void eachBatchEntryGetsItsOwnRow() {
        SplittableRandom rnd = new SplittableRandom(4);
        for (int n = 0; n < 12; n++) {
            Case c = BackwardCases.random(rnd, DType.F32);
            int batch = 2 + n % 2;
            float[][] rows = slopes(rnd, batch, c.queryHeads());
            AttentionOptions options =
                    c.options().toBuilder().alibiSlopesPerBatch(rows).build();
            Tensor q = Tensors.random(rnd, DType.F32, batch, c.queryHeads(), c.queryLen(), c.headDim());
            Tensor k = Tensors.random(rnd, DType.F32, batch, c.kvHeads(), c.keyLen(), c.headDim());
            Tensor v = Tensors.random(rnd, DType.F32, batch, c.kvHeads(), c.keyLen(), c.valueDim());
            Tensor expected = forward(reference, q, k, v, options);
            for (int b = 0; b < batch; b++) {
                AttentionOptions alone =
                        options.toBuilder().alibiSlopes(rows[b]).build();
                Tensor one = forward(
                        reference,
                        q.sequence(b, 0, c.queryLen()),
                        k.sequence(b, 0, c.keyLen()),
                        v.sequence(b, 0, c.keyLen()),
                        alone);
                assertEquals(0.0, Accuracy.relativeError(one, expected.sequence(b, 0, c.queryLen())), c + " b " + b);
            }
            for (AttentionBackend backend : List.of(cpu, scalar)) {
                double error = Accuracy.relativeError(forward(backend, q, k, v, options), expected);
                assertTrue(error < Accuracy.F32_TOLERANCE, backend.name() + " " + c + ": error " + error);
            }
        }
    }

    @Test
    void gradientsMatchTheReference() {
        SplittableRandom rnd = new SplittableRandom(14);
        for (int n = 0; n < 10; n++) {
            Case c = BackwardCases.random(rnd, DType.F32);
            c = new Case(
                    c.dtype(),
                    2,
                    c.queryHeads(),
                    c.kvHeads(),
                    c.queryLen(),
                    c.keyLen(),
                    c.headDim(),
                    c.valueDim(),
                    c.options().toBuilder()
                            .alibiSlopesPerBatch(slopes(rnd, 2, c.queryHeads()))
                            .dropout(n % 2 == 0 ? 0f : 0.2f, n)
                            .build());
            BackwardCases.assertMatchesReference(n % 3 == 2 ? scalar : cpu, c, rnd, 1e-4);
        }
    }

    /** A packed sequence's batch index is its place in the batch; a cache entry's its batch entry. */
    @Test
    void packedAndCachedCallsUseTheSequenceIndex() {
        SplittableRandom rnd = new SplittableRandom(5);
        int[] cu = {0, 7, 7, 40, 100};
        float[][] rows = slopes(rnd, 4, 4);
        AttentionOptions options = AttentionOptions.builder()
                .causal(true)
                .alibiSlopesPerBatch(rows)
                .build();
        Tensor q = Tensors.random(rnd, DType.F32, 1, 4, 100, 32);
        Tensor k = Tensors.random(rnd, DType.F32, 1, 2, 100, 32);
        Tensor v = Tensors.random(rnd, DType.F32, 1, 2, 100, 32);
        for (AttentionBackend backend : List.of(cpu, reference)) {
            Tensor out = Tensor.allocate(DType.F32, 1, 4, 100, 32);
            backend.forwardVarlen(q, k, v, new PackedSequences(cu, cu), out, null, options);
            for (int s = 0; s < 4; s++) {
                int len = cu[s + 1] - cu[s];
                if (len == 0) {
                    continue;
                }
                AttentionOptions alone =
                        options.toBuilder().alibiSlopes(rows[s]).build();
                Tensor one = forward(
                        reference,
                        q.sequence(0, cu[s], len),
                        k.sequence(0, cu[s], len),
                        v.sequence(0, cu[s], len),
                        alone);
                double error = Accuracy.relativeError(out.sequence(0, cu[s], len), one);
                assertTrue(error < Accuracy.F32_TOLERANCE, backend.name() + " sequence " + s + ": " + error);
            }
        }
        Tensor query = Tensors.random(rnd, DType.F32, 2, 4, 1, 32);
        Tensor cache = Tensors.random(rnd, DType.F32, 2, 2, 30, 32);
        float[][] two = slopes(rnd, 2, 4);
        Tensor out = Attention.forwardCached(
                        query,
                        cache,
                        cache,
                        new int[] {30, 11},
                        AttentionOptions.builder().alibiSlopesPerBatch(two).build())
                .out();
        for (int b = 0; b < 2; b++) {
            int len = b == 0 ? 30 : 11;
            Tensor one = forward(
                    reference,
                    query.sequence(b, 0, 1),
                    cache.sequence(b, 0, len),
                    cache.sequence(b, 0, len),
                    AttentionOptions.builder().alibiSlopes(two[b]).build());
            assertTrue(Accuracy.relativeError(out.sequence(b, 0, 1), one) < Accuracy.F32_TOLERANCE, "cache entry " + b);
        }
    }

    @Test
    void badSlopesAreRejected() {
        AttentionOptions.Builder builder = AttentionOptions.builder();
        assertRejected(() -> builder.alibiSlopesPerBatch(new float[0][]), "alibiSlopesPerBatch: must hold one row");
        assertRejected(
                () -> builder.alibiSlopesPerBatch(new float[][] {{0.1f}, null}),
                "alibiSlopesPerBatch: row 1 must hold");
        assertRejected(
                () -> builder.alibiSlopesPerBatch(new float[][] {{0.1f}, {0.1f, 0.2f}}),
                "alibiSlopesPerBatch: row 1 must hold");
        assertRejected(() -> builder.alibiSlopesPerBatch(new float[][] {{}}), "alibiSlopesPerBatch: row 0 must hold");
        assertRejected(
                () -> builder.alibiSlopesPerBatch(new float[][] {{0.1f}, {Float.NaN}}),
                "alibiSlopesPerBatch: slope [1][0] must be finite");

        Tensor q = Tensor.allocate(DType.F32, 2, 2, 4, 16);
        AttentionOptions threeRows = AttentionOptions.builder()
                .alibiSlopesPerBatch(new float[][] {{0.1f, 0.2f}, {0.1f, 0.2f}, {0.1f, 0.2f}})
                .build();
        assertRejected(
                () -> Attention.forward(q, q, q, threeRows), "options.alibiSlopesPerBatch: 3 rows must be one per");
        AttentionOptions oneHead = AttentionOptions.builder()
                .alibiSlopesPerBatch(new float[][] {{0.1f}, {0.2f}})
                .build();
        assertRejected(() -> Attention.forward(q, q, q, oneHead), "options.alibiSlopesPerBatch: rows of 1 slopes");
        AttentionOptions huge = AttentionOptions.builder()
                .alibiSlopesPerBatch(new float[][] {{0.1f, 0.2f}, {0.1f, 1e30f}})
                .build();
        assertRejected(() -> Attention.forward(q, q, q, huge), "options.alibiSlopesPerBatch: slope [1][1]");
        Tensor packed = Tensor.allocate(DType.F32, 1, 2, 6, 16);
        AttentionOptions twoRows = AttentionOptions.builder()
                .alibiSlopesPerBatch(new float[][] {{0.1f, 0.2f}, {0.1f, 0.2f}})
                .build();
        assertRejected(
                () -> Attention.forwardVarlen(
                        packed, packed, packed, new int[] {0, 2, 4, 6}, new int[] {0, 2, 4, 6}, twoRows),
                "options.alibiSlopesPerBatch: 2 rows must be one per batch entry (per sequence of a packed call), 3");
        Capabilities plain = Capabilities.of(256, EnumSet.allOf(DType.class), Capabilities.Feature.BACKWARD);
        assertRejected(
                () -> AttentionShape.ofInputs(q, q, q, twoRows, plain),
                "options.alibiSlopesPerBatch: slopes per batch entry are not supported");
    }

    private static void assertRejected(Runnable call, String start) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call::run);
        assertTrue(e.getMessage().startsWith(start), e.getMessage());
    }

    private static Tensor forward(AttentionBackend backend, Tensor q, Tensor k, Tensor v, AttentionOptions options) {
        Tensor out = Tensor.allocate(DType.F32, q.batch(), q.heads(), q.seqLen(), v.headDim());
        backend.forward(q, k, v, out, null, options);
        return out;
    }
}
