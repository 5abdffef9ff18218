package dev.aule.cli;

import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.Accuracy;
import dev.aule.testing.FaultyBackend;
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
        Set<Integer> dims = all.stream().map(c -> c.shape().headDim()).collect(Collectors.toSet());
        assertTrue(dims.containsAll(Set.of(16, 32, 64, 80, 96, 128, 256)), dims.toString());
        Set<Integer> lengths = all.stream().map(c -> c.shape().queryLen()).collect(Collectors.toSet());
        assertTrue(lengths.containsAll(Set.of(1, 3, 17, 127)), lengths.toString());
        assertTrue(all.stream().anyMatch(c -> c.shape().queryLen() < c.shape().keyLen()));
        assertTrue(all.stream().anyMatch(c -> c.shape().queryLen() > c.shape().keyLen()));
        assertTrue(all.stream().anyMatch(c -> c.shape().valueDim() != c.shape().headDim()));
        assertTrue(all.stream()
                .anyMatch(c -> c.shape().queryHeads() == 8 * c.shape().kvHeads()
                        && c.shape().kvHeads() > 1));
        assertTrue(all.stream().anyMatch(c -> c.shape().kvHeads() == 1));
        assertTrue(all.stream()
                .anyMatch(c -> c.options().windowLeft() >= 0 && c.options().windowRight() >= 0));
        assertTrue(all.stream()
                .anyMatch(c -> c.options().windowLeft() >= 0 && c.options().windowRight() < 0));
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
        CaseResult lazy = runner.run(
                        c,
                        List.of(new FaultyBackend(
                                "skips-last-row", Backends.get("cpu"), ConformanceTest::unwriteLastRow)))
                .getFirst();
        assertFalse(lazy.passed());
        assertEquals(Double.POSITIVE_INFINITY, lazy.outError(), lazy.toString());
    }

    @Test
    void errorMeasureLetsNoNaNPassAndMatchesInfinities() {
        Tensor ref = Tensor.of(new float[] {1, Float.NEGATIVE_INFINITY}, 1, 1, 2, 1);
        Tensor same = Tensor.of(new float[] {1, Float.NEGATIVE_INFINITY}, 1, 1, 2, 1);
        Tensor nan = Tensor.of(new float[] {Float.NaN, Float.NEGATIVE_INFINITY}, 1, 1, 2, 1);
        Tensor finite = Tensor.of(new float[] {1, 0}, 1, 1, 2, 1);
        assertEquals(0, Accuracy.relativeError(same, ref));
        assertFalse(Accuracy.within(Accuracy.relativeError(nan, ref), 1e-5));
        assertFalse(Accuracy.within(Accuracy.relativeError(finite, ref), 1e-5));
    }

    /** Some row of some head sees no key at all. */
    private static boolean hasRowWithoutKeys(ConformanceCase c) {
        var visibility =
                dev.aule.spi.Visibility.of(c.shape().queryLen(), c.shape().keyLen(), c.options());
        return visibility.count(0) == 0;
    }

    /** As if the backend never wrote the last output row: it keeps the NaN the runner poisoned it with. */
    private static void unwriteLastRow(FaultyBackend.Call call) {
        Tensor out = call.out();
        float[] poison = new float[out.headDim()];
        java.util.Arrays.fill(poison, Float.NaN);
        out.writeRow(out.batch() - 1, out.heads() - 1, out.seqLen() - 1, poison, 0);
    }
}
