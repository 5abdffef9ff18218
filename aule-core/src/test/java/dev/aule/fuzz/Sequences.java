package dev.aule.fuzz;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;

/** The serving oracle: the float64 reference forward of one sequence on contiguous copies of its rows. */
final class Sequences {
    private Sequences() {}

    /** A contiguous F32 copy {@code [1, H, rows.length, D]} of rows {@code rows} of batch entry {@code b}. */
    static Tensor gather(Tensor t, int b, int[] rows) {
        int d = t.headDim();
        float[] data = new float[t.heads() * rows.length * d];
        for (int h = 0; h < t.heads(); h++) {
            for (int r = 0; r < rows.length; r++) {
                t.readRow(b, h, rows[r], data, (h * rows.length + r) * d);
            }
        }
        return Tensor.of(data, 1, t.heads(), rows.length, d);
    }

    /**
     * A contiguous F32 copy {@code [1, Hkv, n, dim]} of the first {@code n} keys of a paged sequence: key {@code j}
     * from slot {@code j % blockSize} of block {@code table[j / blockSize]} of {@code pool}.
     */
    static Tensor gatherBlocks(Tensor pool, int[] table, int n, int blockSize) {
        int dim = pool.headDim();
        float[] data = new float[pool.heads() * n * dim];
        for (int h = 0; h < pool.heads(); h++) {
            for (int j = 0; j < n; j++) {
                pool.readRow(table[j / blockSize], h, j % blockSize, data, (h * n + j) * dim);
            }
        }
        return Tensor.of(data, 1, pool.heads(), n, dim);
    }

    static int[] range(int from, int count) {
        int[] rows = new int[count];
        for (int i = 0; i < count; i++) {
            rows[i] = from + i;
        }
        return rows;
    }

    /**
     * Asserts that rows {@code [from, from + q.seqLen())} of batch entry {@code b} of {@code out} and {@code lse}
     * are the reference attention of {@code q} ({@code [1, Hq, rows, D]}) against {@code k} and {@code v}
     * ({@code [1, Hkv, n, D]}, null for no keys: rows 0, LSE {@code -inf}).
     */
    static void assertRows(
            String where,
            Tensor out,
            Tensor lse,
            int b,
            int from,
            Tensor q,
            Tensor k,
            Tensor v,
            AttentionOptions options) {
        int rows = q.seqLen();
        Tensor ref = Tensor.allocate(out.dtype(), 1, q.heads(), rows, out.headDim());
        Tensor refLse = Tensor.allocate(DType.F32, 1, q.heads(), rows, 1);
        if (k == null) {
            for (int h = 0; h < q.heads(); h++) { // no key: -inf, or the head's sink logit with sinks
                for (int i = 0; i < rows; i++) {
                    refLse.set(0, h, i, 0, options.sink(h));
                }
            }
        } else {
            Backends.get("reference").forward(q, k, v, ref, refLse, options);
        }
        double limit = k == null ? 1e-5 : Contract.outTolerance(out.dtype(), q, k, options);
        Contract.assertClose(where + " out", out.sequence(b, from, rows), ref, limit);
        if (lse != null) {
            double lseLimit = k == null ? 1e-5 : Contract.lseTolerance(q, k, options);
            Contract.assertClose(where + " lse", lse.sequence(b, from, rows), refLse, lseLimit);
        }
    }
}
