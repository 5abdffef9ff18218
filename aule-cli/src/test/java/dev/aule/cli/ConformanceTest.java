package dev.aule.cli;

import dev.aule.spi.AttentionBackend;
import dev.aule.AttentionOptions;
import dev.aule.spi.Availability;
import dev.aule.Backends;
import dev.aule.spi.Capabilities;
import dev.aule.DType;
import dev.aule.Tensor;
import org.junit.jupiter.api.Test;

import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ConformanceTest {

    @Test
    void caseNamesAreUniqueAndQuickIsAFeaturePerCase() {
        List<ConformanceCase> all = ConformanceCases.all();
        Set<String> names = new HashSet<>();
        all.forEach(c -> assertTrue(names.add(c.name()), "duplicate " + c.name()));
        assertEquals(ConformanceCases.QUICK.size(), ConformanceCases.quick().size(), "a --quick name matches no case");
    }

    @Test
    void sweepCoversTheContract() {
        List<ConformanceCase> all = ConformanceCases.all();
        Set<Integer> dims = all.stream().map(ConformanceCase::headDim).collect(Collectors.toSet());
        assertTrue(dims.containsAll(Set.of(16, 32, 64, 80, 96, 128, 256)), dims.toString());
        Set<Integer> lengths = all.stream().map(ConformanceCase::queryLen).collect(Collectors.toSet());
        assertTrue(lengths.containsAll(Set.of(1, 3, 17, 127)), lengths.toString());
        assertTrue(all.stream().anyMatch(c -> c.queryLen() < c.keyLen()));
        assertTrue(all.stream().anyMatch(c -> c.queryLen() > c.keyLen()));
        assertTrue(all.stream().anyMatch(c -> c.valueDim() != c.headDim()));
        assertTrue(all.stream().anyMatch(c -> c.queryHeads() == 8 * c.kvHeads() && c.kvHeads() > 1));
        assertTrue(all.stream().anyMatch(c -> c.kvHeads() == 1));
        assertTrue(all.stream().anyMatch(c -> c.options().windowLeft() >= 0 && c.options().windowRight() >= 0));
        assertTrue(all.stream().anyMatch(c -> c.options().windowLeft() >= 0 && c.options().windowRight() < 0));
        assertTrue(all.stream().anyMatch(c -> c.options().softcap() > 0));
        assertTrue(all.stream().anyMatch(c -> c.options().hasAlibi()));
        assertTrue(all.stream().anyMatch(c -> c.options().explicitScale().isPresent()));
        assertTrue(all.stream().anyMatch(ConformanceTest::hasRowWithoutKeys));
        assertTrue(all.stream().anyMatch(c -> c.dtype() == DType.F16));
        assertTrue(all.stream().anyMatch(c -> c.dtype() == DType.BF16));
        assertTrue(all.stream().anyMatch(c -> c.layout() == TensorLayout.BSHD));
        assertTrue(all.stream().anyMatch(c -> c.layout() == TensorLayout.OFF_HEAP));
    }

    @Test
    void anUnwrittenElementFails() {
        CaseRunner runner = new CaseRunner(7);
        ConformanceCase c = ConformanceCases.all().getFirst();
        CaseResult honest = runner.run(c, List.of(Backends.get("cpu"))).getFirst();
        assertTrue(honest.passed(), honest.toString());
        CaseResult lazy = runner.run(c, List.of(new SkipsLastRow(Backends.get("cpu")))).getFirst();
        assertFalse(lazy.passed());
        assertTrue(Double.isNaN(lazy.outError()), lazy.toString());
    }

    @Test
    void errorMeasureLetsNoNaNPassAndMatchesInfinities() {
        Tensor ref = Tensor.of(new float[] {1, Float.NEGATIVE_INFINITY}, 1, 1, 2, 1);
        Tensor same = Tensor.of(new float[] {1, Float.NEGATIVE_INFINITY}, 1, 1, 2, 1);
        Tensor nan = Tensor.of(new float[] {Float.NaN, Float.NEGATIVE_INFINITY}, 1, 1, 2, 1);
        Tensor finite = Tensor.of(new float[] {1, 0}, 1, 1, 2, 1);
        assertEquals(0, ErrorMeasure.relative(same, ref));
        assertFalse(ErrorMeasure.passes(ErrorMeasure.relative(nan, ref), 1e-5));
        assertFalse(ErrorMeasure.passes(ErrorMeasure.relative(finite, ref), 1e-5));
    }

    /** Some row of some head sees no key at all. */
    private static boolean hasRowWithoutKeys(ConformanceCase c) {
        var visibility = dev.aule.spi.Visibility.of(c.queryLen(), c.keyLen(), c.options());
        return visibility.count(0) == 0;
    }

    /** A broken backend for the test: right everywhere except the last output row, which it never writes. */
    private record SkipsLastRow(AttentionBackend inner) implements AttentionBackend {
        @Override
        public String name() {
            return "skips-last-row";
        }

        @Override
        public String description() {
            return "test double";
        }

        @Override
        public int priority() {
            return 0;
        }

        @Override
        public Availability availability() {
            return Availability.available("test");
        }

        @Override
        public Capabilities capabilities() {
            return inner.capabilities();
        }

        @Override
        public void forward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, AttentionOptions options) {
            Tensor full = Tensor.allocate(out.dtype(), out.batch(), out.heads(), out.seqLen(), out.headDim());
            inner.forward(q, k, v, full, lse, options);
            float[] row = new float[out.headDim()];
            for (int b = 0; b < out.batch(); b++) {
                for (int h = 0; h < out.heads(); h++) {
                    for (int s = 0; s < out.seqLen(); s++) {
                        boolean last = b == out.batch() - 1 && h == out.heads() - 1 && s == out.seqLen() - 1;
                        if (!last) {
                            full.readRow(b, h, s, row, 0);
                            out.writeRow(b, h, s, row, 0);
                        }
                    }
                }
            }
        }
    }
}
