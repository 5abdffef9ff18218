package dev.aule.vulkan;

import dev.aule.Backends;
import dev.aule.testing.CaseFailures;
import dev.aule.testing.ForwardCase;

/**
 * Run by {@link SubgroupSizesTest} in a JVM whose lavapipe has another subgroup size: prints the device's subgroup
 * size, then runs random cases on the blocked forward (whose CPU layout is one subgroup per row group) and on the
 * decode kernel against the float64 reference, and exits 0 when all pass, 1 (with the failures on stderr) when
 * not, 2 when there is no Vulkan device.
 */
public final class SubgroupCasesMain {
    private SubgroupCasesMain() {}

    /**
     * Runs the cases.
     *
     * @param args the first seed, then the number of cases per kernel
     */
    public static void main(String[] args) {
        VulkanBackend vulkan = (VulkanBackend) Backends.get("vulkan");
        if (!vulkan.availability().available()) {
            System.out.println("UNAVAILABLE " + vulkan.availability().reason());
            System.exit(2);
        }
        System.out.println("subgroup " + vulkan.device().info().subgroupSize());
        long first = Long.parseLong(args[0]);
        int count = Integer.parseInt(args[1]);
        CaseFailures failures = new CaseFailures();
        for (String kernel : new String[] {"blocked", "decode", "decode-direct"}) {
            System.setProperty(AttentionKernels.KERNEL_PROPERTY, kernel);
            int run = 0;
            for (long seed = first; run < count; seed++) {
                ForwardCase c = ForwardCase.random(seed, seed % 2 == 0);
                dev.aule.spi.AttentionShape shape = new dev.aule.spi.AttentionShape(
                        c.batch(), c.queryHeads(), c.kvHeads(), c.queryLen(), c.keyLen(), c.headDim(), c.valueDim());
                String refusal = kernel.equals("blocked")
                        ? AttentionKernels.blockedRefusal(vulkan.device().info(), shape)
                        : AttentionKernels.decodeRefusal(vulkan.device().info(), shape);
                if (refusal == null) {
                    failures.check(vulkan, c);
                    run++;
                }
            }
        }
        try {
            failures.assertNone(
                    "cases at subgroup size " + vulkan.device().info().subgroupSize());
        } catch (AssertionError e) {
            System.err.println(e.getMessage());
            System.exit(1);
        }
        System.out.println("OK");
        System.exit(0);
    }
}
