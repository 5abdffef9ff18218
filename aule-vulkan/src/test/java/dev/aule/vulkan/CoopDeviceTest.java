package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.reference.ReferenceBackend;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The coop kernel on the device under test: where the device lacks what it needs (lavapipe), or its first-use
 * check disabled it, {@code -Daule.vulkan.kernel=coop} is refused with the reason and nothing is written, and
 * {@code aule info}'s line says why; where the check passed, the forced kernel matches the reference.
 */
class CoopDeviceTest {
    private final VulkanBackend vulkan = VulkanTestSupport.backend();

    @Test
    void theCoopKernelRunsOnlyWhereItsCheckPassedAndInfoSaysWhy() throws Throwable {
        VulkanDevice device = vulkan.device();
        CoopCheck.Result status = device.coopStatus();
        String missing = device.info().coop().missingFeature();
        if (missing != null) {
            assertEquals(
                    missing, status.reason(), "a device without cooperative matrices is refused for what it lacks");
        }
        assertTrue(
                vulkan.availability().reason().contains(status.summary()),
                "aule info shows the coop status: " + vulkan.availability().reason());

        SplittableRandom random = new SplittableRandom(91);
        Tensor q = random(random, 2, 40, 64);
        Tensor k = random(random, 2, 50, 64);
        Tensor v = random(random, 2, 50, 64);
        Tensor out = Tensor.allocate(DType.F32, 1, 2, 40, 64);
        AttentionOptions causal = AttentionOptions.builder().causal(true).build();
        VulkanTestSupport.withProperty(AttentionKernels.KERNEL_PROPERTY, "coop", () -> {
            if (!status.enabled()) {
                out.fill(42f);
                IllegalArgumentException e =
                        assertThrows(IllegalArgumentException.class, () -> vulkan.forward(q, k, v, out, null, causal));
                assertTrue(
                        e.getMessage().contains("-Daule.vulkan.kernel=coop")
                                && e.getMessage().contains(status.reason()),
                        e.getMessage());
                for (float x : out.toFloatArray()) {
                    assertEquals(42f, x, "nothing written by a refused call");
                }
            } else {
                Tensor want = Tensor.allocate(DType.F32, 1, 2, 40, 64);
                vulkan.forward(q, k, v, out, null, causal);
                new ReferenceBackend().forward(q, k, v, want, null, causal);
                assertNull(CoopCheck.compare("out", out.toFloatArray(), want.toFloatArray()));
            }
        });
    }

    private static Tensor random(SplittableRandom random, int heads, int seq, int d) {
        Tensor t = Tensor.allocate(DType.F16, 1, heads, seq, d);
        for (int h = 0; h < heads; h++) {
            for (int s = 0; s < seq; s++) {
                for (int i = 0; i < d; i++) {
                    t.set(0, h, s, i, (float) (2 * random.nextDouble() - 1));
                }
            }
        }
        return t;
    }
}
