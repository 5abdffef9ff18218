package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.testing.Tensors;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Median time and GFLOP/s of a device-tensor prefill forward, B=1, H=4, D=64, F32, Sq=Sk=512 and 1024, without
 * and with a causal mask (FLOPs counted as 4 * S * S * D * H, halved for causal), on the kernel that {@code
 * -Daule.vulkan.kernel} chooses (auto by default), which the output names. A measuring tool for
 * docs/PERFORMANCE.md, not a test. Besides the wall time it prints the process's CPU time per call (lavapipe runs
 * on the CPU), which a busy machine disturbs less. Optional arguments: calls per figure (default 5, after 2 warm-up
 * calls), then one S (no mask only), or {@code decode} for two decode steps instead: B=1 Hq=Hkv=8 Sk=1024 D=64, and
 * Hq=32 Hkv=8 Sk=4096 D=128.
 */
public final class PrefillTimingMain {
    private PrefillTimingMain() {}

    /** A device-tensor decode step (Sq=1, F32, no mask): median wall time and CPU time per call. */
    private static void decode(VulkanBackend vulkan, int calls, int hq, int hkv, int sk, int d) {
        SplittableRandom rnd = new SplittableRandom(4);
        AttentionOptions options = AttentionOptions.defaults();
        try (VulkanTensor qd = vulkan.upload(Tensors.random(rnd, DType.F32, 1, hq, 1, d));
                VulkanTensor kd = vulkan.upload(Tensors.random(rnd, DType.F32, 1, hkv, sk, d));
                VulkanTensor vd = vulkan.upload(Tensors.random(rnd, DType.F32, 1, hkv, sk, d));
                VulkanTensor od = vulkan.allocate(DType.F32, 1, hq, 1, d)) {
            AttentionKernels.ForwardChoice choice = AttentionKernels.chooseForward(
                    vulkan.device().info(), new dev.aule.spi.AttentionShape(1, hq, hkv, 1, sk, d, d));
            for (int i = 0; i < 5; i++) {
                vulkan.forward(qd, kd, vd, od, null, options);
            }
            long[] nanos = new long[calls];
            long cpu0 = processCpuNanos();
            for (int i = 0; i < calls; i++) {
                long t0 = System.nanoTime();
                vulkan.forward(qd, kd, vd, od, null, options);
                nanos[i] = System.nanoTime() - t0;
            }
            double cpuPerCall = (processCpuNanos() - cpu0) / (double) calls;
            Arrays.sort(nanos);
            System.out.printf(
                    "decode B=1 Hq=%d Hkv=%d Sq=1 Sk=%d D=%d F32, kernel %s (%s): median %.2f ms; CPU time %.2f ms a"
                            + " call%n",
                    hq, hkv, sk, d, choice.kernel(), choice.reason(), nanos[calls / 2] / 1e6, cpuPerCall / 1e6);
        }
    }

    /**
     * CPU time of the whole process (lavapipe's threads included) from /proc/self/stat (Linux; clock ticks taken
     * as 10 ms), or 0 where there is no such file.
     */
    private static long processCpuNanos() {
        try {
            String stat = java.nio.file.Files.readString(java.nio.file.Path.of("/proc/self/stat"));
            String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
            return (Long.parseLong(f[11]) + Long.parseLong(f[12])) * 10_000_000L; // utime + stime
        } catch (java.io.IOException | RuntimeException e) {
            return 0;
        }
    }

    /**
     * Prints one line per shape.
     *
     * @param args optional calls per figure
     */
    public static void main(String[] args) {
        int calls = args.length > 0 ? Integer.parseInt(args[0]) : 5;
        VulkanBackend vulkan = (VulkanBackend) Backends.get("vulkan");
        if (!vulkan.availability().available()) {
            System.out.println("UNAVAILABLE " + vulkan.availability().reason());
            return;
        }
        SplittableRandom rnd = new SplittableRandom(3);
        int heads = 4;
        int d = 64;
        if (args.length > 1 && args[1].equals("decode")) {
            decode(vulkan, calls, 8, 8, 1024, 64);
            decode(vulkan, calls, 32, 8, 4096, 128);
            return;
        }
        int[] sizes = args.length > 1 ? new int[] {Integer.parseInt(args[1])} : new int[] {512, 1024};
        boolean[] masks = args.length > 1 ? new boolean[] {false} : new boolean[] {false, true};
        for (int s : sizes) {
            for (boolean causal : masks) {
                AttentionOptions options =
                        AttentionOptions.builder().causal(causal).build();
                Tensor q = Tensors.random(rnd, DType.F32, 1, heads, s, d);
                try (VulkanTensor qd = vulkan.upload(q);
                        VulkanTensor kd = vulkan.upload(Tensors.random(rnd, DType.F32, 1, heads, s, d));
                        VulkanTensor vd = vulkan.upload(Tensors.random(rnd, DType.F32, 1, heads, s, d));
                        VulkanTensor od = vulkan.allocate(DType.F32, 1, heads, s, d)) {
                    AttentionKernels.ForwardChoice choice = AttentionKernels.chooseForward(
                            vulkan.device().info(), new dev.aule.spi.AttentionShape(1, heads, heads, s, s, d, d));
                    for (int i = 0; i < 2; i++) {
                        vulkan.forward(qd, kd, vd, od, null, options);
                    }
                    long[] nanos = new long[calls];
                    long cpu0 = processCpuNanos();
                    for (int i = 0; i < calls; i++) {
                        long t0 = System.nanoTime();
                        vulkan.forward(qd, kd, vd, od, null, options);
                        nanos[i] = System.nanoTime() - t0;
                    }
                    double cpuPerCall = (processCpuNanos() - cpu0) / (double) calls;
                    Arrays.sort(nanos);
                    double median = nanos[calls / 2];
                    double flops = 4.0 * s * s * d * heads * (causal ? 0.5 : 1.0);
                    System.out.printf(
                            "prefill B=1 H=%d S=%d D=%d F32 %s, kernel %s %s: median %.1f ms, %.2f GFLOP/s;"
                                    + " CPU time %.1f ms a call, %.2f GFLOP per CPU second%n",
                            heads,
                            s,
                            d,
                            causal ? "causal" : "no mask",
                            choice.kernel(),
                            choice.plan(),
                            median / 1e6,
                            flops / median,
                            cpuPerCall / 1e6,
                            flops / cpuPerCall);
                }
            }
        }
    }
}
