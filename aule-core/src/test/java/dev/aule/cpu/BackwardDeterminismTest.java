package dev.aule.cpu;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Gradients;
import dev.aule.Tensor;
import dev.aule.spi.BackwardInputs;
import dev.aule.testing.BackwardCases;
import dev.aule.testing.BackwardCases.Case;
import dev.aule.testing.BackwardCases.Inputs;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/** The CPU backward gives bitwise the same gradients on one worker or all, run after run, and beside other calls. */
class BackwardDeterminismTest {
    // Shapes that split the keys into several chunks (so dQ is reduced from partial sums) and use every option.
    private static final List<Case> CASES = List.of(
            new Case(
                    DType.F32,
                    1,
                    4,
                    1,
                    300,
                    300,
                    64,
                    64,
                    AttentionOptions.builder().causal(true).softcap(2f).build()),
            new Case(
                    DType.F32,
                    2,
                    8,
                    2,
                    200,
                    333,
                    80,
                    48,
                    AttentionOptions.builder()
                            .window(40, 9)
                            .alibiSlopes(new float[] {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f})
                            .build()),
            new Case(
                    DType.BF16,
                    1,
                    2,
                    2,
                    150,
                    129,
                    32,
                    32,
                    AttentionOptions.builder().causal(true).build()));

    private final CpuBackend cpu = new CpuBackend();

    @Test
    void oneWorkerAndAllWorkersAgreeBitwise() {
        SplittableRandom rnd = new SplittableRandom(21);
        for (Case c : CASES) {
            Inputs in = BackwardCases.inputs(rnd, c, cpu);
            Gradients single = run(in, c, 1);
            for (int repeat = 0; repeat < 3; repeat++) {
                assertBitwiseEqual(single, run(in, c, Integer.MAX_VALUE), c + " repeat " + repeat);
            }
        }
    }

    /** Concurrent callers share the pool and its scratch buffers; each still gets the single-worker result. */
    @Test
    void concurrentCallsAgreeBitwise() throws Exception {
        SplittableRandom rnd = new SplittableRandom(22);
        Case c = CASES.getFirst();
        Inputs in = BackwardCases.inputs(rnd, c, cpu);
        Gradients single = run(in, c, 1);
        try (ExecutorService callers = Executors.newFixedThreadPool(3)) {
            List<Future<Gradients>> results = callers.invokeAll(List.of(
                    () -> run(in, c, Integer.MAX_VALUE),
                    () -> run(in, c, Integer.MAX_VALUE),
                    () -> run(in, c, Integer.MAX_VALUE)));
            for (Future<Gradients> result : results) {
                assertBitwiseEqual(single, result.get(), c + " concurrent");
            }
        }
    }

    private Gradients run(Inputs in, Case c, int maxWorkers) {
        Gradients g = BackwardCases.poisoned(in, c.dtype());
        cpu.backward(
                new BackwardInputs(in.q(), in.k(), in.v(), in.out(), in.dOut(), in.lse()), g, c.options(), maxWorkers);
        return g;
    }

    private static void assertBitwiseEqual(Gradients expected, Gradients actual, String what) {
        assertArrayEquals(bits(expected.dq()), bits(actual.dq()), what + " dq");
        assertArrayEquals(bits(expected.dk()), bits(actual.dk()), what + " dk");
        assertArrayEquals(bits(expected.dv()), bits(actual.dv()), what + " dv");
    }

    private static int[] bits(Tensor t) {
        float[] values = t.toFloatArray();
        int[] bits = new int[values.length];
        for (int i = 0; i < values.length; i++) {
            bits[i] = Float.floatToRawIntBits(values[i]);
        }
        return bits;
    }
}
