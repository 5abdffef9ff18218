package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.Accuracy;
import dev.aule.spi.AttentionBackend;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Submissions reuse the device's {@link SubmitContext}s: many calls from several threads create no more
 * contexts than calls run at once, stay correct against the reference, and closing the device destroys
 * every context, also those of threads that have ended.
 */
class SubmitContextTest {
    private final AttentionBackend reference = Backends.get("reference");

    @Test
    void callsFromSeveralThreadsReuseContextsAndMatchTheReference() throws Exception {
        VulkanTestSupport.backend(); // skips (or fails under AULE_REQUIRE_VULKAN=1) without Vulkan
        int threads = 3;
        int callsPerThread = 8;
        VulkanDevice device = VulkanDevice.open();
        ContextPool contexts = device.contexts();
        try {
            VulkanBackend vulkan = new VulkanBackend(device);
            ExecutorService pool = Executors.newFixedThreadPool(threads);
            try {
                List<Future<String>> results = new ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    long seed = 40 + t;
                    Callable<String> calls = () -> {
                        SplittableRandom rnd = new SplittableRandom(seed);
                        for (int c = 0; c < callsPerThread; c++) {
                            String failure = hostAndDeviceCall(vulkan, rnd);
                            if (failure != null) {
                                return failure;
                            }
                        }
                        return null;
                    };
                    results.add(pool.submit(calls));
                }
                for (Future<String> f : results) {
                    String failure = f.get();
                    assertEquals(null, failure, failure);
                }
            } finally {
                pool.shutdownNow();
            }
            // Each call holds one context at a time, so at most one per thread exists however many calls ran.
            assertTrue(contexts.created() >= 1 && contexts.created() <= threads, "created " + contexts.created());
            assertEquals(contexts.created(), contexts.live());
        } finally {
            device.close();
        }
        assertEquals(0, contexts.live(), "contexts left after the device closed");
    }

    @Test
    void contextsOfEndedThreadsAreDestroyedWhenTheDeviceCloses() throws Exception {
        VulkanTestSupport.backend();
        VulkanDevice device = VulkanDevice.open();
        ContextPool contexts = device.contexts();
        try {
            VulkanBackend vulkan = new VulkanBackend(device);
            for (int i = 0; i < 3; i++) {
                SplittableRandom rnd = new SplittableRandom(60 + i);
                String[] failure = new String[1];
                Thread t = new Thread(() -> failure[0] = hostAndDeviceCall(vulkan, rnd));
                t.start();
                t.join();
                assertEquals(null, failure[0], failure[0]);
            }
            assertEquals(1, contexts.created(), "threads one after another share one context");
        } finally {
            device.close();
        }
        assertEquals(0, contexts.live());
    }

    /** A host-tensor forward and a device-tensor forward with lse; the failure, or null. */
    private String hostAndDeviceCall(VulkanBackend vulkan, SplittableRandom rnd) {
        int sq = 1 + rnd.nextInt(20);
        int sk = 1 + rnd.nextInt(40);
        Tensor q = Tensors.random(rnd, DType.F32, 1, 4, sq, 32);
        Tensor k = Tensors.random(rnd, DType.F32, 1, 2, sk, 32);
        Tensor v = Tensors.random(rnd, DType.F32, 1, 2, sk, 32);
        AttentionOptions options =
                AttentionOptions.builder().causal(rnd.nextBoolean()).build();
        Tensor ref = Tensor.allocate(DType.F32, 1, 4, sq, 32);
        Tensor refLse = Tensor.allocate(DType.F32, 1, 4, sq, 1);
        reference.forward(q, k, v, ref, refLse, options);
        Tensor out = Tensor.allocate(DType.F32, 1, 4, sq, 32);
        Tensor lse = Tensor.allocate(DType.F32, 1, 4, sq, 1);
        vulkan.forward(q, k, v, out, lse, options);
        double error = Math.max(Accuracy.relativeError(out, ref), Accuracy.relativeError(lse, refLse));
        if (!(error < 1e-5)) {
            return "host forward sq=" + sq + " sk=" + sk + ": error " + error;
        }
        try (VulkanTensor qd = vulkan.upload(q);
                VulkanTensor kd = vulkan.upload(k);
                VulkanTensor vd = vulkan.upload(v);
                VulkanTensor od = vulkan.allocate(DType.F32, 1, 4, sq, 32);
                VulkanTensor ld = vulkan.allocate(DType.F32, 1, 4, sq, 1)) {
            vulkan.forward(qd, kd, vd, od, ld, options);
            error = Math.max(Accuracy.relativeError(od.toHost(), ref), Accuracy.relativeError(ld.toHost(), refLse));
            return error < 1e-5 ? null : "device forward sq=" + sq + " sk=" + sk + ": error " + error;
        }
    }
}
