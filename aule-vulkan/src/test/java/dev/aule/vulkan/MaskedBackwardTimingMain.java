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
 * Median wall time and device time of device-tensor backward passes B=1, H=4, S=512, D=64, F32: no mask, the causal
 * flag, a causal BlockMask, a causal MaskMod without BlockMask and an all-visible MaskMod, with the backward's tile
 * codes ({@link DeviceMasks#forBackward}). A measuring tool for docs/PERFORMANCE.md, not a test. Optional
 * arguments: calls per figure (default 3, after 1 warm-up call), then S, then passes over the cases (default 2).
 */
public final class MaskedBackwardTimingMain {
    private MaskedBackwardTimingMain() {}

    /**
     * Prints one line per case.
     *
     * @param args optional calls per figure, then S, then passes
     */
    public static void main(String[] args) {
        int calls = args.length > 0 ? Integer.parseInt(args[0]) : 3;
        int s = args.length > 1 ? Integer.parseInt(args[1]) : 512;
        int passes = args.length > 2 ? Integer.parseInt(args[2]) : 2;
        VulkanBackend vulkan = (VulkanBackend) Backends.get("vulkan");
        if (!vulkan.availability().available()) {
            System.out.println("UNAVAILABLE " + vulkan.availability().reason());
            return;
        }
        int h = 4;
        int d = 64;
        SplittableRandom rnd = new SplittableRandom(6);
        AttentionShape shape = new AttentionShape(1, h, h, s, s, d, d);
        AttentionOptions[] cases = {
            AttentionOptions.defaults(),
            AttentionOptions.builder().causal(true).build(),
            AttentionOptions.builder()
                    .blockMask(BlockMask.of(MaskMod.causal(), s, s))
                    .build(),
            AttentionOptions.builder().maskMod(MaskMod.causal()).build(),
            AttentionOptions.builder().maskMod((b, hh, q, kv) -> true).build()
        };
        String[] names = {
            "no mask", "causal flag", "causal BlockMask", "causal MaskMod without BlockMask", "all-visible MaskMod"
        };
        try (VulkanTensor q = vulkan.upload(Tensors.random(rnd, DType.F32, 1, h, s, d));
                VulkanTensor k = vulkan.upload(Tensors.random(rnd, DType.F32, 1, h, s, d));
                VulkanTensor v = vulkan.upload(Tensors.random(rnd, DType.F32, 1, h, s, d));
                VulkanTensor dOut = vulkan.upload(Tensors.random(rnd, DType.F32, 1, h, s, d));
                VulkanTensor out = vulkan.allocate(DType.F32, 1, h, s, d);
                VulkanTensor lse = vulkan.allocate(DType.F32, 1, h, s, 1);
                VulkanTensor dq = vulkan.allocate(DType.F32, 1, h, s, d);
                VulkanTensor dk = vulkan.allocate(DType.F32, 1, h, s, d);
                VulkanTensor dv = vulkan.allocate(DType.F32, 1, h, s, d)) {
            // Each case once per pass, the passes one after the other: a shared machine's load drifts.
            for (int round = 0; round < passes; round++) {
                for (int c = 0; c < cases.length; c++) {
                    AttentionOptions options = cases[c];
                    vulkan.forward(q, k, v, out, lse, options);
                    DeviceMasks masks = DeviceMasks.forBackward(vulkan.device().info(), shape, options);
                    String tiles = "";
                    if (masks != null) {
                        int[] codes = new int[3];
                        for (int x = DeviceMasks.HEADER; x < masks.meta.length; x++) {
                            codes[masks.meta[x]]++;
                        }
                        tiles = String.format(
                                " (tiles %d empty, %d partial, %d full, plan %d x %d)",
                                codes[DeviceMasks.TILE_EMPTY],
                                codes[DeviceMasks.TILE_PARTIAL],
                                codes[DeviceMasks.TILE_FULL],
                                masks.plan.rows(),
                                masks.plan.keys());
                    }
                    vulkan.backward(q, k, v, out, dOut, lse, dq, dk, dv, options);
                    long[] nanos = new long[calls];
                    long[] device = new long[calls];
                    for (int i = 0; i < calls; i++) {
                        long t0 = System.nanoTime();
                        vulkan.backward(q, k, v, out, dOut, lse, dq, dk, dv, options);
                        nanos[i] = System.nanoTime() - t0;
                        device[i] = vulkan.lastDeviceNanos().orElse(-1);
                    }
                    Arrays.sort(nanos);
                    Arrays.sort(device);
                    System.out.printf(
                            "backward S=%d H=%d D=%d F32 %s%s: median %.1f ms, device %.1f ms%n",
                            s, h, d, names[c], tiles, nanos[calls / 2] / 1e6, device[calls / 2] / 1e6);
                }
            }
        }
    }
}
