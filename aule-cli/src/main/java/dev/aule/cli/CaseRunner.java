package dev.aule.cli;

import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.Accuracy;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.AttentionShape;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Runs one conformance case: fresh random inputs in the case's layout, the float64 reference once,
 * then each backend into NaN-poisoned outputs, compared by the contract's error measure.
 */
final class CaseRunner {
    private final AttentionBackend reference = Backends.get("reference");
    private final long seed;

    CaseRunner(long seed) {
        this.seed = seed;
    }

    List<CaseResult> run(ConformanceCase c, List<AttentionBackend> backends) {
        // Seeded by name as well, so a case gets the same inputs however the list is filtered.
        SplittableRandom rnd = new SplittableRandom(seed ^ c.name().hashCode());
        try (Arena arena = Arena.ofShared()) {
            TensorLayout layout = c.layout();
            AttentionShape s = c.shape();
            Tensor q = RandomFill.fill(
                    layout.allocate(arena, c.dtype(), s.batch(), s.queryHeads(), s.queryLen(), s.headDim()), rnd);
            Tensor k = RandomFill.fill(
                    layout.allocate(arena, c.dtype(), s.batch(), s.kvHeads(), s.keyLen(), s.headDim()), rnd);
            Tensor v = RandomFill.fill(
                    layout.allocate(arena, c.dtype(), s.batch(), s.kvHeads(), s.keyLen(), s.valueDim()), rnd);

            // The reference writes F32 so the 16-bit cases measure the backend's rounding, not the reference's.
            Tensor expectedOut = Tensor.allocate(DType.F32, s.batch(), s.queryHeads(), s.queryLen(), s.valueDim());
            Tensor expectedLse = Tensor.allocate(DType.F32, s.batch(), s.queryHeads(), s.queryLen(), 1);
            reference.forward(q, k, v, expectedOut, expectedLse, c.options());

            List<CaseResult> results = new ArrayList<>();
            for (AttentionBackend backend : backends) {
                Tensor out = layout.allocate(arena, c.dtype(), s.batch(), s.queryHeads(), s.queryLen(), s.valueDim());
                Tensor lse = layout.allocate(arena, DType.F32, s.batch(), s.queryHeads(), s.queryLen(), 1);
                out.fill(Float.NaN);
                lse.fill(Float.NaN);
                try {
                    backend.forward(q, k, v, out, lse, c.options());
                } catch (RuntimeException e) {
                    results.add(CaseResult.threw(c, backend.name(), e));
                    continue;
                }
                results.add(new CaseResult(
                        c,
                        backend.name(),
                        Accuracy.relativeError(out, expectedOut),
                        Accuracy.relativeError(lse, expectedLse),
                        null));
            }
            return results;
        }
    }
}
