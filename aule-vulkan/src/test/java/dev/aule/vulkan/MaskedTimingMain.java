package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.mask.BlockMask;
import dev.aule.mask.MaskMod;
import dev.aule.spi.AttentionShape;
import dev.aule.testing.Tensors;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Median wall time (and device time, from the submission's timestamps) of device-tensor forwards B=1, H=4, S=512, D=64, F32: no mask and the causal flag, a causal
 * BlockMask, a causal MaskMod without BlockMask and an all-visible MaskMod, on the automatic kernels and then with
 * {@code -Daule.vulkan.kernel=forward} (the plain tiled kernel, masked or not), with each masked call's host
 * preparation ({@link DeviceMasks}) and its tile codes. A measuring tool for docs/PERFORMANCE.md, not a test. Optional arguments: calls per figure
 * (default 3, after 1 warm-up call), then S.
 */
public final class MaskedTimingMain {
    private MaskedTimingMain() {}

    /**
     * Prints one line per case.
     *
     * @param args optional calls per figure, then S
     */
    public static void main(String[] args) {
        int calls = args.length > 0 ? Integer.parseInt(args[0]) : 3;
        int s = args.length > 1 ? Integer.parseInt(args[1]) : 512;
        VulkanBackend vulkan = (VulkanBackend) Backends.get("vulkan");
        if (!vulkan.availability().available()) {
            System.out.println("UNAVAILABLE " + vulkan.availability().reason());
            return;
        }
        int heads = 4;
        int d = 64;
        SplittableRandom rnd = new SplittableRandom(5);
        AttentionShape shape = new AttentionShape(1, heads, heads, s, s, d, d);
        AttentionOptions causal = AttentionOptions.builder().causal(true).build();
        AttentionOptions causalBlocks = AttentionOptions.builder()
                .blockMask(BlockMask.of(MaskMod.causal(), s, s))
                .build();
        AttentionOptions causalMod =
                AttentionOptions.builder().maskMod(MaskMod.causal()).build();
        AttentionOptions allVisible =
                AttentionOptions.builder().maskMod((b, h, q, kv) -> true).build();
        try (VulkanTensor q = vulkan.upload(Tensors.random(rnd, DType.F32, 1, heads, s, d));
                VulkanTensor k = vulkan.upload(Tensors.random(rnd, DType.F32, 1, heads, s, d));
                VulkanTensor v = vulkan.upload(Tensors.random(rnd, DType.F32, 1, heads, s, d));
                VulkanTensor out = vulkan.allocate(DType.F32, 1, heads, s, d)) {
            String kernel = AttentionKernels.KERNEL_PROPERTY;
            Kernel auto = AttentionKernels.chooseForward(vulkan.device().info(), shape)
                    .kernel();
            time(vulkan, calls, q, k, v, out, AttentionOptions.defaults(), "no mask, " + auto);
            time(vulkan, calls, q, k, v, out, causal, "causal flag, " + auto);
            for (String forced : new String[] {null, "forward"}) {
                if (forced != null) {
                    System.setProperty(kernel, forced);
                    time(vulkan, calls, q, k, v, out, AttentionOptions.defaults(), "no mask, FORWARD");
                    time(vulkan, calls, q, k, v, out, causal, "causal flag, FORWARD");
                }
                // Each masked case twice, the second time after the others: on a shared machine the first case
                // after a kernel change measured slower than the same work later.
                for (int round = 0; round < 2; round++) {
                    masked(vulkan, calls, shape, q, k, v, out, causalBlocks, "causal BlockMask");
                    masked(vulkan, calls, shape, q, k, v, out, causalMod, "causal MaskMod without BlockMask");
                    masked(vulkan, calls, shape, q, k, v, out, allVisible, "all-visible MaskMod");
                }
            }
            System.clearProperty(kernel);
        }
    }

    /** One masked case, with its host preparation and its tile codes. */
    private static void masked(
            VulkanBackend vulkan,
            int calls,
            AttentionShape shape,
            VulkanTensor q,
            VulkanTensor k,
            VulkanTensor v,
            VulkanTensor out,
            AttentionOptions options,
            String what) {
        long t0 = System.nanoTime();
        DeviceMasks masks = DeviceMasks.of(vulkan.device().info(), shape, options);
        long prep = System.nanoTime() - t0;
        int[] codes = new int[3];
        for (int x = DeviceMasks.HEADER; x < masks.meta.length; x++) {
            codes[masks.meta[x]]++;
        }
        String detail = String.format(
                " (host preparation %.1f ms; tiles %d empty, %d partial, %d full, plan %d x %d)",
                prep / 1e6,
                codes[DeviceMasks.TILE_EMPTY],
                codes[DeviceMasks.TILE_PARTIAL],
                codes[DeviceMasks.TILE_FULL],
                masks.plan.rows(),
                masks.plan.keys());
        time(vulkan, calls, q, k, v, out, options, what + ", " + masks.kernel + detail);
    }

    private static void time(
            VulkanBackend vulkan,
            int calls,
            VulkanTensor q,
            VulkanTensor k,
            VulkanTensor v,
            VulkanTensor out,
            AttentionOptions options,
            String what) {
        vulkan.forward(q, k, v, out, null, options);
        long[] nanos = new long[calls];
        long[] device = new long[calls];
        for (int i = 0; i < calls; i++) {
            long t0 = System.nanoTime();
            vulkan.forward(q, k, v, out, null, options);
            nanos[i] = System.nanoTime() - t0;
            device[i] = vulkan.lastDeviceNanos().orElse(-1);
        }
        Arrays.sort(nanos);
        Arrays.sort(device);
        System.out.printf(
                "S=%d H=4 D=64 F32 %s: median %.1f ms, device %.1f ms%n",
                q.shape()[2], what, nanos[calls / 2] / 1e6, device[calls / 2] / 1e6);
    }
}
