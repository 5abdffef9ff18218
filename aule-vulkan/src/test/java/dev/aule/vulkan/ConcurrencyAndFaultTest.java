package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.Accuracy;
import dev.aule.spi.AttentionBackend;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Many threads on one queue; faults give clear exceptions and leave the backend usable. */
class ConcurrencyAndFaultTest {
    private final VulkanBackend vulkan = VulkanTestSupport.backend();
    private final AttentionBackend reference = Backends.get("reference");

    @Test
    void callsFromManyThreadsMatchTheReference() throws Exception {
        int threads = 4;
        int callsPerThread = 6;
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            List<Future<String>> results = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                long seed = t;
                results.add(pool.submit(() -> {
                    SplittableRandom rnd = new SplittableRandom(seed);
                    for (int c = 0; c < callsPerThread; c++) {
                        String failure = oneCall(rnd, seed * 100 + c);
                        if (failure != null) {
                            return failure;
                        }
                    }
                    return null;
                }));
            }
            for (Future<String> f : results) {
                String failure = f.get();
                assertEquals(null, failure, failure);
            }
        } finally {
            pool.shutdownNow();
        }
    }

    /** A forward (or a device-tensor forward) on random shapes; the failure, or null. */
    private String oneCall(SplittableRandom rnd, long id) {
        int group = 1 + rnd.nextInt(3);
        int sq = 1 + rnd.nextInt(40);
        int sk = 1 + rnd.nextInt(40);
        int d = 16 * (1 + rnd.nextInt(4));
        AttentionOptions options =
                AttentionOptions.builder().causal(rnd.nextBoolean()).build();
        Tensor q = Tensors.random(rnd, DType.F32, 1, 2 * group, sq, d);
        Tensor k = Tensors.random(rnd, DType.F32, 1, 2, sk, d);
        Tensor v = Tensors.random(rnd, DType.F32, 1, 2, sk, d);
        Tensor ref = Tensor.allocate(DType.F32, 1, 2 * group, sq, d);
        reference.forward(q, k, v, ref, null, options);
        Tensor out = Tensor.allocate(DType.F32, 1, 2 * group, sq, d);
        if (id % 2 == 0) {
            vulkan.forward(q, k, v, out, null, options);
        } else {
            try (VulkanTensor qd = vulkan.upload(q);
                    VulkanTensor kd = vulkan.upload(k);
                    VulkanTensor vd = vulkan.upload(v);
                    VulkanTensor od = vulkan.allocate(DType.F32, 1, 2 * group, sq, d)) {
                vulkan.forward(qd, kd, vd, od, null, options);
                od.download(out);
            }
        }
        double error = Accuracy.relativeError(out, ref);
        return error < 1e-5 ? null : "call " + id + ": error " + error;
    }

    @Test
    void aShaderThatDoesNotCompileFailsClearlyAndTheBackendStaysUsable() {
        VulkanDevice device = vulkan.device();
        String broken = "layout(local_size_x = 1) in;\nvoid main() { undefined_function(); }\n";
        VulkanException e = assertThrows(
                VulkanException.class, () -> device.pipelines().build(Kernel.DELTA, "broken.comp", broken, Map.of()));
        assertTrue(
                e.getMessage().contains("broken.comp") && e.getMessage().contains("undefined_function"),
                e.getMessage());
        SplittableRandom rnd = new SplittableRandom(9);
        assertEquals(null, oneCall(rnd, 0));
    }

    @Test
    void theBackendRanksBelowCpuOnACpuDevice() {
        if (vulkan.device().info().isCpu()) {
            assertTrue(vulkan.priority() < Backends.get("cpu").priority(), "lavapipe must not win auto-selection");
        } else {
            assertTrue(vulkan.priority() > Backends.get("cpu").priority(), "a GPU must win auto-selection");
        }
        assertTrue(
                vulkan.availability().reason().contains(vulkan.device().info().name()));
    }

    @Test
    void aCorruptOrUnwritableCacheDirectoryIsHarmless(@org.junit.jupiter.api.io.TempDir Path dir) throws Throwable {
        VulkanTestSupport.withProperty(PipelineCacheFile.DIRECTORY_PROPERTY, dir.toString(), () -> {
            PipelineCacheFile file = PipelineCacheFile.forDevice(vulkan.device().info());
            Files.write(file.path(), new byte[] {1, 2, 3, 4, 5, 6, 7, 8, 9});
            // The driver rejects (or ignores) the garbage; the pipelines still build.
            try (Pipelines pipelines = new Pipelines(vulkan.device())) {
                long p = pipelines.pipeline(Variant.of(
                        Kernel.DELTA, TilePlan.elementwise(vulkan.device().info()), Map.of("O_TYPE", 0, "DO_TYPE", 0)));
                assertTrue(p != 0);
                pipelines.saveCache();
            }
            assertTrue(Files.size(file.path()) > 9, "the cache was rewritten");
            // A cache path that is a directory cannot be read or written: still no exception.
            Files.delete(file.path());
            Files.createDirectory(file.path());
            try (Pipelines pipelines = new Pipelines(vulkan.device())) {
                pipelines.saveCache();
            }
        });
    }
}
