package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.testing.Tensors;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Median time of one cached decode step on the Vulkan backend, B=4, Hq=8, Hkv=2, D=64, cache capacity 1024,
 * lengths {1024, 700, 300, 17}, causal: the cache as host tensors (uploaded every call) and as device tensors
 * (only the lengths uploaded), the cpu backend on the host cache for scale, then the same through a paged pool
 * of 16-key blocks on the device. A measuring tool for docs/PERFORMANCE.md, not a test. Optional arguments: calls
 * per figure (default 100), and {@code unmapped} (see {@link HostCallTimingMain}).
 */
public final class ServingTimingMain {
    private ServingTimingMain() {}

    /**
     * Prints one line per figure.
     *
     * @param args optional calls per figure, then optionally {@code unmapped}
     */
    public static void main(String[] args) {
        int calls = args.length > 0 ? Integer.parseInt(args[0]) : 100;
        VulkanBackend vulkan = args.length > 1 && args[1].equals("unmapped")
                ? new VulkanBackend(VulkanDevice.openUnmapped())
                : (VulkanBackend) Backends.get("vulkan");
        if (!vulkan.availability().available()) {
            System.out.println("UNAVAILABLE " + vulkan.availability().reason());
            return;
        }
        SplittableRandom rnd = new SplittableRandom(5);
        int b = 4;
        int capacity = 1024;
        int[] lens = {1024, 700, 300, 17};
        AttentionOptions options = AttentionOptions.builder().causal(true).build();
        Tensor q = Tensors.random(rnd, DType.F32, b, 8, 1, 64);
        Tensor k = Tensors.random(rnd, DType.F32, b, 2, capacity, 64);
        Tensor v = Tensors.random(rnd, DType.F32, b, 2, capacity, 64);
        Tensor out = Tensor.allocate(DType.F32, b, 8, 1, 64);
        double host = median(calls, () -> vulkan.forwardCached(q, k, v, lens, out, null, options));
        System.out.printf(
                "cached decode B=4 Hq=8 Hkv=2 D=64 cap=1024 F32, host-tensor cache: median %.1f us%n", host / 1e3);
        dev.aule.spi.AttentionBackend cpu = Backends.get("cpu");
        double onCpu = median(calls, () -> cpu.forwardCached(q, k, v, lens, out, null, options));
        System.out.printf("cached decode B=4 Hq=8 Hkv=2 D=64 cap=1024 F32, cpu backend: median %.1f us%n", onCpu / 1e3);
        int blocks = capacity / 16;
        int[][] tables = new int[b][blocks];
        for (int e = 0; e < b; e++) {
            for (int i = 0; i < blocks; i++) {
                tables[e][i] = (b - 1 - e) * blocks + i; // entry e's blocks, in another order than the batch's
            }
        }
        try (VulkanTensor qd = vulkan.upload(q);
                VulkanTensor kd = vulkan.upload(k);
                VulkanTensor vd = vulkan.upload(v);
                VulkanTensor kPool = vulkan.allocate(DType.F32, b * blocks, 2, 16, 64);
                VulkanTensor vPool = vulkan.allocate(DType.F32, b * blocks, 2, 16, 64);
                VulkanTensor od = vulkan.allocate(DType.F32, b, 8, 1, 64)) {
            double device = median(calls, () -> vulkan.forwardCached(qd, kd, vd, lens, od, null, options));
            System.out.printf(
                    "cached decode B=4 Hq=8 Hkv=2 D=64 cap=1024 F32, device-tensor cache: median %.1f us%n",
                    device / 1e3);
            double paged = median(calls, () -> vulkan.forwardPaged(qd, kPool, vPool, tables, lens, od, null, options));
            System.out.printf(
                    "paged decode B=4 Hq=8 Hkv=2 D=64 block=16 F32, device-tensor pools: median %.1f us%n",
                    paged / 1e3);
        }
    }

    private static double median(int calls, Runnable call) {
        for (int i = 0; i < 20; i++) {
            call.run(); // warm-up: pipelines built, JIT settled
        }
        long[] nanos = new long[calls];
        for (int i = 0; i < calls; i++) {
            long t0 = System.nanoTime();
            call.run();
            nanos[i] = System.nanoTime() - t0;
        }
        Arrays.sort(nanos);
        return nanos[calls / 2];
    }
}
