package dev.aule.cpu;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.serving.PagedKvCache;
import dev.aule.serving.SparseBudget;
import dev.aule.spi.Accuracy;
import dev.aule.spi.AttentionBackend;
import dev.aule.testing.Tensors;

import java.util.SplittableRandom;

/**
 * Run by {@link ScalarFallbackTest} in a JVM started without {@code --add-modules jdk.incubator.vector}:
 * gets the cpu backend, checks it runs the scalar path, and calls forward several times (through
 * {@link Backends} and a fresh instance) against the reference. Prints OK, or exits with status 1.
 */
public final class ScalarFallbackMain {
    private ScalarFallbackMain() {}

    public static void main(String[] args) {
        AttentionBackend cpu = Backends.get("cpu");
        if (((CpuBackend) cpu).simd()) {
            fail("the cpu backend claims SIMD without the Vector API module");
        }
        if (!cpu.availability().available()) {
            fail("the cpu backend must stay available on the scalar path");
        }
        SplittableRandom rnd = new SplittableRandom(12);
        AttentionBackend[] calls = {cpu, cpu, new CpuBackend()};
        for (int call = 0; call < calls.length; call++) {
            Tensor q = Tensors.random(rnd, DType.F32, 1, 4, 70, 40);
            Tensor k = Tensors.random(rnd, DType.BF16, 1, 2, 90, 40);
            Tensor v = Tensors.random(rnd, DType.F32, 1, 2, 90, 24);
            AttentionOptions options = AttentionOptions.builder()
                    .causal(call != 1)
                    .softcap(call == 2 ? 10f : 0f)
                    .build();
            Tensor out = Tensor.allocate(DType.F32, 1, 4, 70, 24);
            Tensor ref = Tensor.allocate(DType.F32, 1, 4, 70, 24);
            out.fill(Float.NaN);
            calls[call].forward(q, k, v, out, null, options);
            Backends.get("reference").forward(q, k, v, ref, null, options);
            double err = Accuracy.relativeError(out, ref);
            if (!(err < 1e-5)) {
                fail("call " + call + " (" + options + "): error " + err);
            }
        }
        sparseDecode(rnd);
        System.out.println("OK " + cpu.description());
    }

    /** Sparse decode's block choice runs its scalar path here: a block of keys along the query must be chosen. */
    private static void sparseDecode(SplittableRandom rnd) {
        PagedKvCache cache = PagedKvCache.create(DType.F32, 64, 16, 1, 32);
        cache.enableKeySummaries();
        int seq = cache.newSequence();
        for (int blk = 0; blk < 64; blk++) {
            Tensor k = Tensors.random(rnd, DType.F32, 1, 1, 16, 32);
            if (blk == 21) {
                for (int j = 0; j < 16; j++) {
                    k.set(0, 0, j, 3, 20f);
                }
            }
            cache.append(seq, k, Tensors.random(rnd, DType.F32, 1, 1, 16, 32));
        }
        Tensor q = Tensor.allocate(DType.F32, 1, 2, 1, 32);
        q.set(0, 0, 0, 3, 1f);
        q.set(0, 1, 0, 3, 1f);
        int[][] chosen = cache.sparseBlocks(seq, q, new SparseBudget(2, 1));
        for (int[] head : chosen) {
            if (java.util.Arrays.binarySearch(head, 21) < 0) {
                fail("sparse decode did not choose the block of matching keys: " + java.util.Arrays.toString(head));
            }
        }
        float lse = cache.sparseAttention(new int[] {seq}, q, new SparseBudget(2, 1), AttentionOptions.defaults())
                .lse()
                .get(0, 0, 0, 0);
        if (!Float.isFinite(lse)) {
            fail("sparse decode's LSE is " + lse);
        }
    }

    private static void fail(String message) {
        System.out.println("FAILED " + message);
        System.exit(1);
    }
}
