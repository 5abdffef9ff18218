package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.testing.Tensors;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Median per-call time of the Vulkan backend's small calls, where host-side overhead dominates: (a) a tiny
 * host-tensor forward B=1, H=8, Sq=Sk=1..16, D=64, (b) a device-tensor decode step Sq=1, Sk=1024, D=64,
 * (c) a device-tensor forward Sq=Sk=1 (the least kernel work a call can have) and (d) an upload plus a
 * download of a small device tensor; for (a) also the {@code vkAllocateMemory} calls per call.
 * A measuring tool for docs/PERFORMANCE.md, not a test. Optional arguments: calls per figure (default 300), and
 * {@code unmapped} to run on a device opened with every kernel buffer device-local ({@link
 * VulkanDevice#openUnmapped}), so host data goes through staging as on a discrete GPU.
 */
public final class HostCallTimingMain {
    private HostCallTimingMain() {}

    /**
     * Prints one line per shape.
     *
     * @param args optional calls per figure, then optionally {@code unmapped}
     */
    public static void main(String[] args) {
        int calls = args.length > 0 ? Integer.parseInt(args[0]) : 300;
        VulkanBackend vulkan = args.length > 1 && args[1].equals("unmapped")
                ? new VulkanBackend(VulkanDevice.openUnmapped())
                : (VulkanBackend) Backends.get("vulkan");
        if (!vulkan.availability().available()) {
            System.out.println("UNAVAILABLE " + vulkan.availability().reason());
            return;
        }
        SplittableRandom rnd = new SplittableRandom(3);
        AttentionOptions options = AttentionOptions.defaults();
        for (int s : new int[] {1, 4, 16}) {
            Tensor q = Tensors.random(rnd, DType.F32, 1, 8, s, 64);
            Tensor out = Tensor.allocate(DType.F32, 1, 8, s, 64);
            long allocations = vulkan.device().memoryAllocations();
            double median = median(calls, () -> vulkan.forward(q, q, q, out, null, options));
            // Counted over the warm-up too: blocks made by the first calls, then none while the pool is warm.
            System.out.printf(
                    "host forward B=1 H=8 Sq=Sk=%d D=64 F32: median %.1f us, %.3f vkAllocateMemory per call%n",
                    s, median / 1e3, (vulkan.device().memoryAllocations() - allocations) / (double) (calls + 50));
        }
        Tensor q = Tensors.random(rnd, DType.F32, 1, 8, 1, 64);
        Tensor kv = Tensors.random(rnd, DType.F32, 1, 8, 1024, 64);
        try (VulkanTensor qd = vulkan.upload(q);
                VulkanTensor kd = vulkan.upload(kv);
                VulkanTensor od = vulkan.allocate(DType.F32, 1, 8, 1, 64)) {
            double median = median(calls, () -> vulkan.forward(qd, kd, kd, od, null, options));
            System.out.printf("device decode B=1 H=8 Sq=1 Sk=1024 D=64 F32: median %.1f us%n", median / 1e3);
            try (VulkanTensor k1 = vulkan.upload(q)) {
                median = median(calls, () -> vulkan.forward(qd, k1, k1, od, null, options));
                System.out.printf("device forward B=1 H=8 Sq=Sk=1 D=64 F32: median %.1f us%n", median / 1e3);
            }
            Tensor back = Tensor.allocate(DType.F32, 1, 8, 1, 64);
            median = median(calls, () -> {
                qd.upload(q);
                qd.download(back);
            });
            System.out.printf("device tensor upload + download [1, 8, 1, 64] F32: median %.1f us%n", median / 1e3);
        }
    }

    private static double median(int calls, Runnable call) {
        for (int i = 0; i < 50; i++) {
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
