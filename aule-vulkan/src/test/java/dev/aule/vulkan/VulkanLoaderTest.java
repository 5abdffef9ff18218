package dev.aule.vulkan;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

class VulkanLoaderTest {

    @Test
    void aMissingLoaderIsReportedWithItsNameAndWhatToInstall() {
        String reason = VulkanLoader.missingReason("libaule-no-such-vulkan-loader.so.1");
        // The test support's skip rule and the CLI's table both key on this prefix.
        assertTrue(reason.startsWith("no Vulkan loader"), reason);
        assertTrue(reason.contains("libaule-no-such-vulkan-loader.so.1"), reason);
        assertTrue(reason.contains("install libvulkan1"), reason);
    }

    @Test
    void theInstalledLoaderIsFound() {
        // CI installs the loader and lavapipe and sets AULE_REQUIRE_VULKAN=1; elsewhere the backend's own
        // availability tells whether a loader is there.
        boolean required = "1".equals(System.getenv("AULE_REQUIRE_VULKAN"));
        if (required || new VulkanBackend().availability().available()) {
            assertNull(VulkanLoader.missingReason());
        }
    }
}
