package dev.aule.vulkan;

import org.lwjgl.PointerBuffer;
import org.lwjgl.system.MemoryStack;
import org.lwjgl.vulkan.VK10;
import org.lwjgl.vulkan.VkBufferCreateInfo;
import org.lwjgl.vulkan.VkMemoryAllocateInfo;
import org.lwjgl.vulkan.VkMemoryRequirements;

import java.lang.foreign.MemorySegment;
import java.nio.LongBuffer;
import java.util.function.Consumer;

import static org.lwjgl.system.MemoryStack.stackPush;
import static org.lwjgl.vulkan.VK10.*;

/**
 * A storage buffer and its memory. On unified-memory devices (integrated GPUs, CPU devices) it is
 * host-visible and mapped, so the host reads and writes it in place; on discrete GPUs it is
 * device-local, and {@link #write}/{@link #read} go through a temporary host-visible staging buffer.
 * Made by {@link #allocate}, which owns the handles it records; {@link #close()} frees them.
 *
 * @param device the device it lives on
 * @param handle the {@code VkBuffer}
 * @param memory the {@code VkDeviceMemory} bound to it
 * @param bytes its size, a whole number of 32-bit words
 * @param mapped the host's view of its memory, or null when it is device-local only
 */
record DeviceBuffer(VulkanDevice device, long handle, long memory, long bytes, MemorySegment mapped)
        implements AutoCloseable {

    /** A buffer for the kernels: mapped where memory is unified, device-local otherwise. */
    static DeviceBuffer allocate(VulkanDevice device, long bytes) {
        return allocate(device, bytes, device.info().unifiedMemory());
    }

    /**
     * @param hostVisible whether the host maps it (staging buffers, unified memory)
     * @throws VulkanException when the device has no memory left (nothing stays allocated then)
     */
    @SuppressWarnings("restricted") // viewing the mapped pointer as a segment of the mapped size
    static DeviceBuffer allocate(VulkanDevice device, long bytes, boolean hostVisible) {
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
                int required = hostVisible
                        ? VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT
                        : VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
                int type = device.memoryType(
                        req.memoryTypeBits(), required, hostVisible ? VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT : 0);
                if (type < 0) {
                    type = device.memoryType(req.memoryTypeBits(), 0, 0);
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
                if (hostVisible) {
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

    /** Lets {@code fill} write the buffer's bytes (through staging on device-local memory). */
    void write(Consumer<MemorySegment> fill) {
        access(fill, true);
    }

    /** Lets {@code use} read the buffer's bytes (through staging on device-local memory). */
    void read(Consumer<MemorySegment> use) {
        access(use, false);
    }

    /**
     * Hands {@code access} the mapped bytes; on device-local memory, a host-visible staging copy, copied in
     * after {@code access} when {@code write} and out before it otherwise.
     */
    private void access(Consumer<MemorySegment> access, boolean write) {
        if (mapped != null) {
            access.accept(mapped);
            return;
        }
        try (DeviceBuffer staging = allocate(device, bytes, true);
                Submission s = new Submission(device)) {
            if (write) {
                access.accept(staging.mapped);
                s.copy(staging, this);
                s.submitAndWait();
            } else {
                s.copy(this, staging);
                s.submitAndWait();
                access.accept(staging.mapped);
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
