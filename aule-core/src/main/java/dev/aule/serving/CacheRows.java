package dev.aule.serving;

import dev.aule.AttentionResult;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.NamedTensor;
import dev.aule.spi.TensorChecks;

import java.util.Objects;

/** Checks and row copies shared by {@link KvCache} and {@link PagedKvCache} appends. */
final class CacheRows {
    private CacheRows() {}

    /**
     * Checks new keys and values against a cache's geometry: {@code k} {@code [batch, Hkv, n, D]},
     * {@code v} {@code [batch, Hkv, n, Dv]}, both reachable from this thread (an append fails before it
     * copies its first row, not part-way).
     */
    static void checkNew(Tensor k, Tensor v, int batch, int kvHeads, int headDim, int valueDim, Rope rope) {
        Objects.requireNonNull(k, "k");
        Objects.requireNonNull(v, "v");
        TensorChecks.checkAccessible(new NamedTensor("k", k), new NamedTensor("v", v));
        String shapes = " (k " + k.shapeString() + ", v " + v.shapeString() + "; the cache holds " + kvHeads
                + " KV heads, head dims " + headDim + " and " + valueDim + ")";
        if (k.batch() != batch || v.batch() != batch) {
            throw new IllegalArgumentException(
                    "k, v: batch must be " + batch + ", one entry per sequence appended to" + shapes);
        }
        if (k.heads() != kvHeads || v.heads() != kvHeads) {
            throw new IllegalArgumentException("k, v: heads must equal the cache's KV heads " + kvHeads + shapes);
        }
        if (k.headDim() != headDim || v.headDim() != valueDim) {
            throw new IllegalArgumentException("k, v: head dims must equal the cache's" + shapes);
        }
        if (k.seqLen() != v.seqLen()) {
            throw new IllegalArgumentException(
                    "v: " + v.seqLen() + " new tokens must equal k's " + k.seqLen() + shapes);
        }
        if (rope != null) {
            rope.checkRows("k", k);
        }
    }

    /**
     * Copies row {@code (b, h, s)} of {@code src} into row {@code (db, h, ds)} of {@code dst} through
     * {@code row}, rotated to {@code position} when {@code rope} is not null (RoPE fused into the copy).
     */
    static void copy(
            Tensor src, int b, int h, int s, Tensor dst, int db, int ds, float[] row, Rope rope, int position) {
        src.readRow(b, h, s, row, 0);
        if (rope != null) {
            rope.rotate(row, 0, position);
        }
        dst.writeRow(db, h, ds, row, 0);
    }

    /** A fresh output (q's dtype, {@code valueDim} wide) and F32 LSE for the query rows of {@code q}. */
    static AttentionResult result(Tensor q, int valueDim) {
        return new AttentionResult(
                Tensor.allocate(q.dtype(), q.batch(), q.heads(), q.seqLen(), valueDim),
                Tensor.allocate(DType.F32, q.batch(), q.heads(), q.seqLen(), 1));
    }
}
