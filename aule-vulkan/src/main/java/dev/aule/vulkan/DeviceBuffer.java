package dev.aule.vulkan;

import org.lwjgl.PointerBuffer;
import org.lwjgl.system.MemoryStack;
import org.lwjgl.vulkan.VK10;
import org.lwjgl.vulkan.VkBufferCreateInfo;
import org.lwjgl.vulkan.VkMemoryAllocateInfo;
import org.lwjgl.vulkan.VkMemoryRequirements;

import java.lang.foreign.MemorySegment;
import java.nio.LongBuffer;

import static org.lwjgl.system.MemoryStack.stackPush;
import static org.lwjgl.vulkan.VK10.*;

/**
 * A storage buffer and its memory. On unified-memory devices (integrated GPUs, CPU devices) it is
 * host-visible and mapped, so the host reads and writes it in place; on discrete GPUs it is
 * device-local, and {@link Submission#write}/{@link Submission#read} go through the submission's staging
 * buffer. Made by {@link #allocate}, which owns the handles it records; {@link #close()} frees them.
 *
 * @param device the device it lives on
 * @param handle the {@code VkBuffer}
 * @param memory the {@code VkDeviceMemory} bound to it
 * @param bytes its size, a whole number of 32-bit words
 * @param mapped the host's view of its memory, or null when it is device-local only
 */
record DeviceBuffer(VulkanDevice device, long handle, long memory, long bytes, MemorySegment mapped)
        implements AutoCloseable {

    /** Where a buffer's memory lives. */
    enum Memory {
        /** Device-local, not mapped: the kernels' buffers on a discrete GPU. */
        LOCAL(VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0),
        /** Host-visible and mapped, device-local where possible: the kernels' buffers on unified memory. */
        MAPPED(
                VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
                VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT),
        /**
         * Host-visible and mapped, host-cached where possible (read-backs then read cached memory, not
         * write-combined), else any host-visible coherent memory: staging buffers.
         */
        STAGING(
                VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
                VK_MEMORY_PROPERTY_HOST_CACHED_BIT);

        final int required;
        final int preferred;

        Memory(int required, int preferred) {
            this.required = required;
            this.preferred = preferred;
        }

        boolean mapped() {
            return this != LOCAL;
        }
    }

    /** A buffer for the kernels: mapped where the device maps its buffers (unified memory), device-local otherwise. */
    static DeviceBuffer allocate(VulkanDevice device, long bytes) {
        return allocate(device, bytes, device.mapsBuffers() ? Memory.MAPPED : Memory.LOCAL);
    }

    /**
     * @param placement where its memory lives
     * @throws VulkanException when the device has no memory left (nothing stays allocated then)
     */
    @SuppressWarnings("restricted") // viewing the mapped pointer as a segment of the mapped size
    static DeviceBuffer allocate(VulkanDevice device, long bytes, Memory placement) {
        long size = Math.max(4, (bytes + 3) & ~3L); // storage buffers are read as 32-bit words
        try (MemoryStack stack = stackPush()) {
            long buffer = device.create(
                    VK10::vkCreateBuffer,
                    VkBufferCreateInfo.calloc(stack)
                            .sType$Default()
                            .size(size)
                            .usage(VK_BUFFER_USAGE_STORAGE_BUFFER_BIT
                                    | VK_BUFFER_USAGE_TRANSFER_SRC_BIT
                                    | VK_BUFFER_USAGE_TRANSFER_DST_BIT)
                            .sharingMode(VK_SHARING_MODE_EXCLUSIVE),
                    "vkCreateBuffer of " + size + " bytes");
            LongBuffer handle = stack.mallocLong(1);
            long memory = VK_NULL_HANDLE;
            try {
                VkMemoryRequirements req = VkMemoryRequirements.malloc(stack);
                vkGetBufferMemoryRequirements(device.handle(), buffer, req);
                int type = device.memoryType(req.memoryTypeBits(), placement.required, placement.preferred);
                if (type < 0 && !placement.mapped()) {
                    type = device.memoryType(req.memoryTypeBits(), 0, 0);
                }
                if (type < 0) {
                    throw new VulkanException(
                            device.info().name() + " has no host-visible coherent memory for a buffer");
                }
                int result = vkAllocateMemory(
                        device.handle(),
                        VkMemoryAllocateInfo.calloc(stack)
                                .sType$Default()
                                .allocationSize(req.size())
                                .memoryTypeIndex(type),
                        null,
                        handle);
                if (result == VK_ERROR_OUT_OF_DEVICE_MEMORY || result == VK_ERROR_OUT_OF_HOST_MEMORY) {
                    throw new VulkanException(
                            "out of memory on " + device.info().name() + " allocating " + size + " bytes ("
                                    + VulkanDevice.resultName(result) + "); free device tensors or use smaller calls");
                }
                VulkanDevice.check(result, "vkAllocateMemory of " + size + " bytes");
                memory = handle.get(0);
                VulkanDevice.check(vkBindBufferMemory(device.handle(), buffer, memory, 0), "vkBindBufferMemory");
                MemorySegment mapped = null;
                if (placement.mapped()) {
                    PointerBuffer ptr = stack.mallocPointer(1);
                    VulkanDevice.check(vkMapMemory(device.handle(), memory, 0, VK_WHOLE_SIZE, 0, ptr), "vkMapMemory");
                    mapped = MemorySegment.ofAddress(ptr.get(0)).reinterpret(size);
                }
                return new DeviceBuffer(device, buffer, memory, size, mapped);
            } catch (RuntimeException e) {
                if (memory != VK_NULL_HANDLE) {
                    vkFreeMemory(device.handle(), memory, null);
                }
                vkDestroyBuffer(device.handle(), buffer, null);
                throw e;
            }
        }
    }

    @Override
    public void close() {
        if (mapped != null) {
            vkUnmapMemory(device.handle(), memory);
        }
        vkDestroyBuffer(device.handle(), handle, null);
        vkFreeMemory(device.handle(), memory, null);
    }
}
