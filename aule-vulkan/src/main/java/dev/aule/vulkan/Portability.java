package dev.aule.vulkan;

import java.util.List;
import java.util.Set;

/**
 * What a Vulkan instance and device must enable so that portability drivers are found and used: MoltenVK (macOS,
 * iOS) is a "portability" implementation that the loader lists only when the instance enables {@code
 * VK_KHR_portability_enumeration} with the enumerate-portability flag, and a device that offers {@code
 * VK_KHR_portability_subset} must have it enabled (the Vulkan specification requires it). Decided from the names
 * the loader and the device report, so the choice is testable without a driver.
 */
final class Portability {
    static final String ENUMERATION = "VK_KHR_portability_enumeration";
    static final String SUBSET = "VK_KHR_portability_subset";
    /** {@code VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR}. */
    static final int ENUMERATE_PORTABILITY_BIT = 0x00000001;

    private Portability() {}

    /** The instance extensions to enable, given those the loader offers. */
    static List<String> instanceExtensions(Set<String> offered) {
        return offered.contains(ENUMERATION) ? List.of(ENUMERATION) : List.of();
    }

    /** The instance create flags that go with {@link #instanceExtensions}. */
    static int instanceFlags(Set<String> offered) {
        return offered.contains(ENUMERATION) ? ENUMERATE_PORTABILITY_BIT : 0;
    }

    /** The device extensions to enable, given those the device offers. */
    static List<String> deviceExtensions(Set<String> offered) {
        return offered.contains(SUBSET) ? List.of(SUBSET) : List.of();
    }
}
