package dev.aule.cpu;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.AttentionBackend;
import dev.aule.testing.ForwardCase;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Backends are shared by every thread of an application. Sixteen threads calling forward at once,
 * each with its own shape and options, must get bit for bit what a call alone gets: the shared pool
 * and the pooled scratch buffers may not leak state from one call into another.
 *
 * <p>The vector path's bits also depend on whether the JIT has compiled it yet (see
 * {@link ReproducibilityTest}), so its sequential baseline is taken once repeated passes agree;
 * the scalar path has no such effect and runs the same check cold.
 */
class ConcurrentCallsTest {
    private static final int THREADS = 16;
    private static final int REPEATS = 3;

    /** One caller's inputs. */
    private record Job(String name, Tensor q, Tensor k, Tensor v, AttentionOptions options, DType outType) {
        /** out and lse bits of one call, concatenated. */
        int[] run(AttentionBackend backend) {
            Tensor out = Tensor.allocate(outType, q.batch(), q.heads(), q.seqLen(), v.headDim());
            Tensor lse = Tensor.allocate(DType.F32, q.batch(), q.heads(), q.seqLen(), 1);
            out.fill(Float.NaN);
            lse.fill(Float.NaN);
            backend.forward(q, k, v, out, lse, options);
            float[] a = out.toFloatArray();
            float[] b = lse.toFloatArray();
            int[] bits = new int[a.length + b.length];
            for (int i = 0; i < a.length; i++) {
                bits[i] = Float.floatToRawIntBits(a[i]);
            }
            for (int i = 0; i < b.length; i++) {
                bits[a.length + i] = Float.floatToRawIntBits(b[i]);
            }
            return bits;
        }
    }

    /**
     * Sixteen different calls: a decode step over 1100 keys (split across workers), one query, GQA
     * 8:1, Dv != D, odd head dims, fully masked rows, random options, some F16 inputs and outputs.
     */
    private static List<Job> jobs() {
        SplittableRandom rnd = new SplittableRandom(2024);
        List<Job> jobs = new ArrayList<>();
        int[][] shapes = { // {B, Hq, Hkv, Sq, Sk, D, Dv}
            {1, 4, 1, 1, 600, 64, 64}, {2, 8, 2, 65, 127, 32, 32}, {1, 2, 2, 200, 200, 80, 80},
            {1, 8, 1, 17, 3, 16, 48}, {2, 4, 4, 127, 64, 96, 96}, {1, 2, 1, 3, 1100, 128, 64},
            {1, 1, 1, 1, 1, 7, 7}, {1, 4, 2, 100, 30, 33, 33}
        };
        for (int i = 0; i < THREADS; i++) {
            int[] s = shapes[i % shapes.length];
            Tensor q = Tensors.random(rnd, DType.F32, s[0], s[1], s[3], s[5]);
            Tensor k = Tensors.random(rnd, i % 3 == 0 ? DType.F16 : DType.F32, s[0], s[2], s[4], s[5]);
            Tensor v = Tensors.random(rnd, DType.F32, s[0], s[2], s[4], s[6]);
            AttentionOptions options = ForwardCase.randomOptions(rnd, s[1], s[4]);
            DType outType = i % 4 == 1 ? DType.F16 : DType.F32;
            jobs.add(new Job("job " + i + " " + Arrays.toString(s) + " " + options, q, k, v, options, outType));
        }
        return jobs;
    }

    @Test
    void vectorPathOnPlatformThreadsMatchesSequentialCallsBitForBit() throws Exception {
        try (ExecutorService pool = Executors.newFixedThreadPool(THREADS)) {
            runConcurrently(Backends.get("cpu"), pool, true);
        }
    }

    @Test
    void vectorPathOnVirtualThreadsMatchesSequentialCallsBitForBit() throws Exception {
        try (ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            runConcurrently(Backends.get("cpu"), pool, true);
        }
    }

    @Test
    void scalarPathOnPlatformThreadsMatchesSequentialCallsBitForBit() throws Exception {
        try (ExecutorService pool = Executors.newFixedThreadPool(THREADS)) {
            runConcurrently(new CpuBackend(new ScalarTileMath()), pool, false);
        }
    }

    @Test
    void scalarPathOnVirtualThreadsMatchesSequentialCallsBitForBit() throws Exception {
        try (ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            runConcurrently(new CpuBackend(new ScalarTileMath()), pool, false);
        }
    }

    @Test
    void referenceBackendOnPlatformThreadsMatchesSequentialCallsBitForBit() throws Exception {
        try (ExecutorService pool = Executors.newFixedThreadPool(THREADS)) {
            runConcurrently(Backends.get("reference"), pool, false);
        }
    }

    /**
     * Takes each job's sequential result (after warming up when asked), then starts all jobs together
     * on the executor, several times, comparing every result bitwise.
     */
    private static void runConcurrently(AttentionBackend backend, ExecutorService pool, boolean warmUp)
            throws Exception {
        List<Job> jobs = jobs();
        List<int[]> expected = sequential(backend, jobs);
        if (warmUp) {
            // Until three passes in a row agree: the JIT has then compiled the hot paths.
            int agreeing = 0;
            for (int pass = 0; pass < 200 && agreeing < 3; pass++) {
                List<int[]> again = sequential(backend, jobs);
                agreeing = sameBits(expected, again) ? agreeing + 1 : 0;
                expected = again;
            }
        }
        for (int repeat = 0; repeat < REPEATS; repeat++) {
            CountDownLatch start = new CountDownLatch(1);
            List<Future<int[]>> results = new ArrayList<>();
            for (Job job : jobs) {
                results.add(pool.submit(() -> {
                    start.await();
                    return job.run(backend);
                }));
            }
            start.countDown();
            for (int i = 0; i < jobs.size(); i++) {
                int[] got = results.get(i).get(2, TimeUnit.MINUTES);
                assertBitwiseEqual(
                        expected.get(i),
                        got,
                        backend.description() + ", repeat " + repeat + ", "
                                + jobs.get(i).name());
            }
        }
    }

    private static List<int[]> sequential(AttentionBackend backend, List<Job> jobs) {
        List<int[]> results = new ArrayList<>();
        for (Job job : jobs) {
            results.add(job.run(backend));
        }
        return results;
    }

    private static boolean sameBits(List<int[]> a, List<int[]> b) {
        for (int i = 0; i < a.size(); i++) {
            if (!Arrays.equals(a.get(i), b.get(i))) {
                return false;
            }
        }
        return true;
    }

    private static void assertBitwiseEqual(int[] expected, int[] actual, String what) {
        assertEquals(expected.length, actual.length, what);
        for (int i = 0; i < expected.length; i++) {
            if (expected[i] != actual[i]) {
                fail(what + ": element " + i + " (out then lse) is " + Float.intBitsToFloat(actual[i])
                        + " concurrently, " + Float.intBitsToFloat(expected[i]) + " alone");
            }
        }
    }
}
