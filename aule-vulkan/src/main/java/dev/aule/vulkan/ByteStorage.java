package dev.aule.vulkan;

import org.lwjgl.system.MemoryStack;
import org.lwjgl.vulkan.VkPhysicalDevice;
import org.lwjgl.vulkan.VkPhysicalDevice8BitStorageFeatures;
import org.lwjgl.vulkan.VkPhysicalDeviceFeatures2;

import java.util.List;

import static org.lwjgl.vulkan.VK11.vkGetPhysicalDeviceFeatures2;

/**
 * 8-bit storage buffers ({@code VK_KHR_8bit_storage}, {@code storageBuffer8BitAccess}): the quantized kernels read
 * single codes through {@code uint8_t} views where the device has them (CODES8 in common.glsl), and unpack them
 * from uint words where it does not; nothing else needs them, so a device without them runs every call.
 */
final class ByteStorage {
    static final String EXTENSION = "VK_KHR_8bit_storage";

    private ByteStorage() {}

    /** {@return whether {@code physical} offers the extension and {@code storageBuffer8BitAccess}} */
    static boolean offered(VkPhysicalDevice physical, MemoryStack stack) {
        if (!VulkanDevice.hasExtension(physical, EXTENSION, stack)) {
            return false;
        }
        VkPhysicalDevice8BitStorageFeatures features =
                VkPhysicalDevice8BitStorageFeatures.calloc(stack).sType$Default();
        vkGetPhysicalDeviceFeatures2(
                physical,
                VkPhysicalDeviceFeatures2.calloc(stack).sType$Default().pNext(features.address()));
        return features.storageBuffer8BitAccess();
    }

    /**
     * Adds the extension to {@code extensions} and returns {@code chain} with {@code storageBuffer8BitAccess}
     * enabled in front, for {@code VkDeviceCreateInfo.pNext}.
     */
    static long enable(List<String> extensions, long chain, MemoryStack stack) {
        extensions.add(EXTENSION);
        return VkPhysicalDevice8BitStorageFeatures.calloc(stack)
                .sType$Default()
                .pNext(chain)
                .storageBuffer8BitAccess(true)
                .address();
    }
}
