package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.testing.Tensors;

import java.util.SplittableRandom;

/**
 * Runs one host-tensor forward under a device timeout too short for any call, for {@link TimeoutTest}: prints
 * {@code TIMEOUT <message>} for the first call's failure and {@code LOST <message>} for the next call's, then
 * exits normally (the shutdown frees the device).
 */
public final class TimeoutMain {
    private TimeoutMain() {}

    /**
     * Runs the two calls.
     *
     * @param args unused
     */
    public static void main(String[] args) {
        VulkanBackend vulkan = (VulkanBackend) Backends.get("vulkan");
        if (!vulkan.availability().available()) {
            System.out.println("UNAVAILABLE " + vulkan.availability().reason());
            System.exit(99);
        }
        SplittableRandom rnd = new SplittableRandom(1);
        Tensor q = Tensors.random(rnd, DType.F32, 1, 8, 512, 64);
        Tensor out = Tensor.allocate(DType.F32, 1, 8, 512, 64);
        for (String label : new String[] {"TIMEOUT", "LOST"}) {
            try {
                vulkan.forward(q, q, q, out, null, AttentionOptions.defaults());
                System.out.println("FINISHED");
            } catch (VulkanException e) {
                System.out.println(label + " " + e.getMessage());
            }
        }
        System.out.flush();
    }
}
