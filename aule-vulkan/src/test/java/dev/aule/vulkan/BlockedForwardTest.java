package dev.aule.vulkan;

import dev.aule.spi.AttentionShape;
import dev.aule.testing.CaseFailures;
import dev.aule.testing.ForwardCase;
import org.junit.jupiter.api.Test;

/**
 * The two tiled forward kernels, each forced, against the float64 reference on the harness's random cases
 * (ForwardConformanceTest runs the automatic choice, where prefill shapes go to the blocked kernel and the
 * plain one runs only when no blocked tile fits): the plain kernel stays selectable, so it stays tested.
 */
class BlockedForwardTest {
    private final VulkanBackend vulkan = VulkanTestSupport.backend();

    @Test
    void theBlockedKernelMatchesTheReference() throws Throwable {
        check("blocked", 50_000, 60);
    }

    @Test
    void thePlainTiledKernelMatchesTheReference() throws Throwable {
        check("forward", 60_000, 40);
    }

    private void check(String kernel, long first, int count) throws Throwable {
        CaseFailures failures = new CaseFailures();
        VulkanTestSupport.withProperty(AttentionKernels.KERNEL_PROPERTY, kernel, () -> {
            for (long seed = first; seed < first + count; seed++) {
                ForwardCase c = ForwardCase.random(seed, seed % 3 == 0);
                AttentionShape shape = new AttentionShape(
                        c.batch(), c.queryHeads(), c.kvHeads(), c.queryLen(), c.keyLen(), c.headDim(), c.valueDim());
                if (kernel.equals("blocked")
                        && AttentionKernels.blockedRefusal(vulkan.device().info(), shape) != null) {
                    continue; // a head dim whose blocked tile does not fit this device: the plain kernel's
                }
                failures.check(vulkan, c);
            }
        });
        failures.assertNone(kernel + " kernel cases");
    }
}
