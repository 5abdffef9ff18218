package dev.aule.testing;

import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.Accuracy;
import dev.aule.spi.AttentionBackend;

/** One forward call on a backend next to the same call on the float64 reference. */
public final class Forwards {
    private Forwards() {}

    /** A forward call (plain, paged, cached...) of some backend into {@code out} and {@code lse}. */
    @FunctionalInterface
    public interface Call {
        void into(AttentionBackend backend, Tensor out, Tensor lse);
    }

    /** The contract's relative errors of a backend's out and lse against the reference's. */
    public record Errors(double out, double lse) {}

    /**
     * Runs {@code call} on {@code backend} into NaN-poisoned F32 outputs {@code [batch, heads, rows, valueDim]}
     * and on the reference into fresh ones, and measures both errors.
     */
    public static Errors againstReference(
            AttentionBackend backend, Call call, int batch, int heads, int rows, int valueDim) {
        Tensor out = Tensor.allocate(DType.F32, batch, heads, rows, valueDim);
        Tensor lse = Tensor.allocate(DType.F32, batch, heads, rows, 1);
        Tensor ref = Tensor.allocate(DType.F32, batch, heads, rows, valueDim);
        Tensor refLse = Tensor.allocate(DType.F32, batch, heads, rows, 1);
        out.fill(Float.NaN);
        lse.fill(Float.NaN);
        call.into(backend, out, lse);
        call.into(Backends.get("reference"), ref, refLse);
        return new Errors(Accuracy.relativeError(out, ref), Accuracy.relativeError(lse, refLse));
    }
}
