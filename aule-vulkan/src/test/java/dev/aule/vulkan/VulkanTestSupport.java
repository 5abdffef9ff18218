package dev.aule.vulkan;

import dev.aule.spi.Availability;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.function.Executable;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * The backend under test. Tests skip (a JUnit assumption, with the reason) only when this machine has
 * no Vulkan loader or no device; any other reason the backend is unavailable (a shader that does not
 * compile, a device that fails to open) fails them. With the environment variable
 * {@code AULE_REQUIRE_VULKAN=1} (set by CI, which installs lavapipe) a missing device fails them too,
 * so a broken driver install cannot turn the suite into a silent skip.
 */
final class VulkanTestSupport {
    private VulkanTestSupport() {}

    static VulkanBackend backend() {
        VulkanBackend backend = new VulkanBackend();
        Availability a = backend.availability();
        if (!a.available()) {
            boolean noVulkanHere = a.reason().startsWith("no Vulkan loader")
                    || a.reason().startsWith("no Vulkan driver")
                    || a.reason().startsWith("the Vulkan loader found no device")
                    || a.reason().startsWith("no usable Vulkan device");
            boolean required = "1".equals(System.getenv("AULE_REQUIRE_VULKAN"));
            Assumptions.assumeTrue(!noVulkanHere || required, "no Vulkan here, vulkan tests skipped: " + a.reason());
            fail(
                    noVulkanHere
                            ? "AULE_REQUIRE_VULKAN=1 but the vulkan backend is unavailable: " + a.reason()
                            : "vulkan backend unavailable although Vulkan is installed: " + a.reason());
        }
        return backend;
    }

    /** Runs {@code body} with system property {@code name} set to {@code value} (cleared if null), then restores it. */
    static void withProperty(String name, String value, Executable body) throws Throwable {
        String saved = System.getProperty(name);
        setOrClear(name, value);
        try {
            body.execute();
        } finally {
            setOrClear(name, saved);
        }
    }

    private static void setOrClear(String name, String value) {
        if (value == null) {
            System.clearProperty(name);
        } else {
            System.setProperty(name, value);
        }
    }
}
