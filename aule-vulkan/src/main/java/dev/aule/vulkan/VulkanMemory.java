package dev.aule.vulkan;

import org.lwjgl.PointerBuffer;
import org.lwjgl.system.MemoryStack;
import org.lwjgl.vulkan.VkMemoryAllocateInfo;

import java.lang.foreign.MemorySegment;
import java.nio.LongBuffer;

import static org.lwjgl.system.MemoryStack.stackPush;
import static org.lwjgl.vulkan.VK10.*;

/** {@link MemoryPool}'s blocks of one memory type of a device: {@code vkAllocateMemory}, mapped whole once if host-visible. */
final class VulkanMemory implements MemoryPool.Backing {
    private final VulkanDevice device;
    private final int type;
    private final boolean hostVisible;

    VulkanMemory(VulkanDevice device, int type, boolean hostVisible) {
        this.device = device;
        this.type = type;
        this.hostVisible = hostVisible;
    }

    @Override
    public long allocate(long bytes) {
        try (MemoryStack stack = stackPush()) {
            LongBuffer handle = stack.mallocLong(1);
            int result = vkAllocateMemory(
                    device.handle(),
                    VkMemoryAllocateInfo.calloc(stack)
                            .sType$Default()
                            .allocationSize(bytes)
                            .memoryTypeIndex(type),
                    null,
                    handle);
            if (result == VK_ERROR_OUT_OF_DEVICE_MEMORY || result == VK_ERROR_OUT_OF_HOST_MEMORY) {
                return 0;
            }
            VulkanDevice.check(result, "vkAllocateMemory of " + bytes + " bytes");
            return handle.get(0);
        }
    }

    @Override
    public void free(long memory) {
        vkFreeMemory(device.handle(), memory, null); // also unmaps it
    }

    @Override
    @SuppressWarnings("restricted") // viewing the mapped pointer as a segment of the mapped size
    public MemorySegment map(long memory, long bytes) {
        if (!hostVisible) {
            return null;
        }
        try (MemoryStack stack = stackPush()) {
            PointerBuffer ptr = stack.mallocPointer(1);
            VulkanDevice.check(vkMapMemory(device.handle(), memory, 0, VK_WHOLE_SIZE, 0, ptr), "vkMapMemory");
            return MemorySegment.ofAddress(ptr.get(0)).reinterpret(bytes);
        }
    }

    @Override
    public String describe() {
        return device.info().name() + " (memory type " + type + ")";
    }
}
