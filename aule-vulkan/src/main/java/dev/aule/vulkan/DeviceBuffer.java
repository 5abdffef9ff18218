package dev.aule.vulkan;

import org.lwjgl.system.MemoryStack;
import org.lwjgl.vulkan.VK10;
import org.lwjgl.vulkan.VkBufferCreateInfo;
import org.lwjgl.vulkan.VkMemoryRequirements;

import java.lang.foreign.MemorySegment;

import static org.lwjgl.system.MemoryStack.stackPush;
import static org.lwjgl.vulkan.VK10.*;

/**
 * A storage buffer and its memory, a range of a block of the device's {@link MemoryPool} for its memory type
 * (pooled memory is not zeroed: {@link Submission#zero} where a buffer must start at zero). On unified-memory devices (integrated GPUs, CPU devices) it is
 * host-visible and mapped, so the host reads and writes it in place; on discrete GPUs it is
 * device-local, and {@link Submission#write}/{@link Submission#read} go through the submission's staging
 * buffer. Made by {@link #allocate}, which owns the handles it records; {@link #close()} frees them.
 *
 * @param device the device it lives on
 * @param handle the {@code VkBuffer}
 * @param pool the pool its memory came from
 * @param memory its range of device memory, bound to it
 * @param bytes its size, a whole number of 32-bit words
 * @param mapped the host's view of its memory, or null when it is device-local only
 */
record DeviceBuffer(
        VulkanDevice device,
        long handle,
        MemoryPool pool,
        MemoryPool.Allocation memory,
        long bytes,
        MemorySegment mapped)
        implements AutoCloseable {
    /** Alignment of every buffer's memory: a cache line, so host writes to two neighbouring buffers never share one. */
    static final long MIN_ALIGNMENT = 64;

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
            MemoryPool pool = null;
            MemoryPool.Allocation memory = null;
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
                pool = device.memoryPool(type);
                memory = pool.allocate(req.size(), Math.max(MIN_ALIGNMENT, req.alignment()));
                VulkanDevice.check(
                        vkBindBufferMemory(device.handle(), buffer, memory.memory(), memory.offset()),
                        "vkBindBufferMemory");
                MemorySegment mapped = placement.mapped() ? memory.mapped().asSlice(0, size) : null;
                return new DeviceBuffer(device, buffer, pool, memory, size, mapped);
            } catch (RuntimeException e) {
                if (memory != null) {
                    pool.free(memory);
                }
                vkDestroyBuffer(device.handle(), buffer, null);
                throw e;
            }
        }
    }

    @Override
    public void close() {
        vkDestroyBuffer(device.handle(), handle, null);
        pool.free(memory);
    }
}
