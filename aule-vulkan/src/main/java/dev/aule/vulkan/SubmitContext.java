package dev.aule.vulkan;

import org.lwjgl.PointerBuffer;
import org.lwjgl.system.MemoryStack;
import org.lwjgl.vulkan.VK10;
import org.lwjgl.vulkan.VkCommandBuffer;
import org.lwjgl.vulkan.VkCommandBufferAllocateInfo;
import org.lwjgl.vulkan.VkCommandPoolCreateInfo;
import org.lwjgl.vulkan.VkDescriptorPoolCreateInfo;
import org.lwjgl.vulkan.VkDescriptorPoolSize;
import org.lwjgl.vulkan.VkFenceCreateInfo;
import org.lwjgl.vulkan.VkQueryPoolCreateInfo;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

import static org.lwjgl.system.MemoryStack.stackPush;
import static org.lwjgl.vulkan.VK10.*;

/**
 * The recording objects one {@link Submission} needs: a command pool with its one command buffer, a descriptor
 * pool, a fence, and a staging buffer for host data of device-local buffers. Made once and reset between
 * submissions ({@link #reset}) instead of created and destroyed per call; {@link ContextPool} lends them out,
 * one submission at a time.
 */
final class SubmitContext {
    /*
     * Staging (maintainers): a submission takes consecutive regions of one host-visible buffer ({@link #stage}),
     * written before the submit (uploads) or read after the wait (read-backs). When a region does not fit, a
     * buffer twice as large (at least the region) replaces it and the old one is retired: regions already
     * recorded still point into it, so it is freed only when the submission is done ({@link #endStaging}), never
     * while the device may still copy from it. Between submissions the context keeps one buffer of at most
     * RETAINED_STAGING_BYTES.
     */

    /** Descriptor sets, hence dispatches, one submission may hold. */
    static final int MAX_SETS = 8;

    /** The largest staging buffer kept between submissions; a larger one is freed once its submission is done. */
    static final long RETAINED_STAGING_BYTES = 16L << 20;

    private static final long MIN_STAGING_BYTES = 64L << 10;
    private static final long REGION_ALIGNMENT = 256; // any element type's alignment, for the host's views

    /** Bytes {@code [offset, offset + bytes)} of a mapped staging buffer. */
    record Region(DeviceBuffer buffer, long offset, long bytes) {
        MemorySegment memory() {
            return buffer.mapped().asSlice(offset, bytes);
        }
    }

    private final VulkanDevice device;
    private final long commandPool;
    private final long descriptorPool;
    private final long fence;
    private final VkCommandBuffer commands;
    /** Two timestamps around a submission's commands, or VK_NULL_HANDLE on a queue without timestamps. */
    private final long timestamps;

    private final List<DeviceBuffer> retired = new ArrayList<>();
    private DeviceBuffer staging;
    private long stagingUsed;

    /** Creates the objects; frees what it made when one fails. */
    SubmitContext(VulkanDevice device) {
        this.device = device;
        long pool = VK_NULL_HANDLE;
        long descriptors = VK_NULL_HANDLE;
        try (MemoryStack stack = stackPush()) {
            pool = device.create(
                    VK10::vkCreateCommandPool,
                    VkCommandPoolCreateInfo.calloc(stack)
                            .sType$Default()
                            .flags(VK_COMMAND_POOL_CREATE_TRANSIENT_BIT)
                            .queueFamilyIndex(device.queueFamily()),
                    "vkCreateCommandPool");
            VkDescriptorPoolSize.Buffer sizes = VkDescriptorPoolSize.calloc(1, stack);
            sizes.get(0).type(VK_DESCRIPTOR_TYPE_STORAGE_BUFFER).descriptorCount(MAX_SETS * Kernel.MAX_BINDINGS);
            descriptors = device.create(
                    VK10::vkCreateDescriptorPool,
                    VkDescriptorPoolCreateInfo.calloc(stack)
                            .sType$Default()
                            .maxSets(MAX_SETS)
                            .pPoolSizes(sizes),
                    "vkCreateDescriptorPool");
            PointerBuffer cb = stack.mallocPointer(1);
            VulkanDevice.check(
                    vkAllocateCommandBuffers(
                            device.handle(),
                            VkCommandBufferAllocateInfo.calloc(stack)
                                    .sType$Default()
                                    .commandPool(pool)
                                    .level(VK_COMMAND_BUFFER_LEVEL_PRIMARY)
                                    .commandBufferCount(1),
                            cb),
                    "vkAllocateCommandBuffers");
            this.fence = device.create(
                    VK10::vkCreateFence, VkFenceCreateInfo.calloc(stack).sType$Default(), "vkCreateFence");
            this.commands = new VkCommandBuffer(cb.get(0), device.handle());
            this.timestamps = device.timestampBits() == 0
                    ? VK_NULL_HANDLE
                    : device.create(
                            VK10::vkCreateQueryPool,
                            VkQueryPoolCreateInfo.calloc(stack)
                                    .sType$Default()
                                    .queryType(VK_QUERY_TYPE_TIMESTAMP)
                                    .queryCount(2),
                            "vkCreateQueryPool");
            this.commandPool = pool;
            this.descriptorPool = descriptors;
        } catch (RuntimeException e) {
            if (descriptors != VK_NULL_HANDLE) {
                vkDestroyDescriptorPool(device.handle(), descriptors, null);
            }
            if (pool != VK_NULL_HANDLE) {
                vkDestroyCommandPool(device.handle(), pool, null);
            }
            throw e;
        }
    }

    VkCommandBuffer commands() {
        return commands;
    }

    long descriptorPool() {
        return descriptorPool;
    }

    long fence() {
        return fence;
    }

    /** {@return the two-timestamp query pool, or VK_NULL_HANDLE when the queue has no timestamps} */
    long timestamps() {
        return timestamps;
    }

    /**
     * Makes the objects ready for a new submission: the command buffer back to its initial state, the
     * descriptor sets freed, the fence unsignalled. Only once the previous submission's fence was waited for
     * (or nothing was submitted), as {@link Submission} guarantees.
     */
    void reset() {
        VulkanDevice.check(vkResetCommandPool(device.handle(), commandPool, 0), "vkResetCommandPool");
        VulkanDevice.check(vkResetDescriptorPool(device.handle(), descriptorPool, 0), "vkResetDescriptorPool");
        VulkanDevice.check(vkResetFences(device.handle(), fence), "vkResetFences");
    }

    /** A region of {@code bytes} of staging memory for the current submission, after the regions it took so far. */
    Region stage(long bytes) {
        long size = Math.max(4, (bytes + 3) & ~3L);
        long offset = (stagingUsed + REGION_ALIGNMENT - 1) & -REGION_ALIGNMENT;
        if (staging == null || offset + size > staging.bytes()) {
            long capacity = Math.max(size, Math.max(MIN_STAGING_BYTES, staging == null ? 0 : 2 * staging.bytes()));
            DeviceBuffer grown = DeviceBuffer.allocate(device, capacity, DeviceBuffer.Memory.STAGING);
            if (staging != null) {
                retired.add(staging);
            }
            staging = grown;
            offset = 0;
        }
        stagingUsed = offset + size;
        return new Region(staging, offset, size);
    }

    /** Bytes of the staging buffer kept for the next submission (tests). */
    long stagingBytes() {
        return staging == null ? 0 : staging.bytes();
    }

    /**
     * Ends the current submission's use of staging once the device is done with it: frees the retired buffers,
     * and the current one when it is over {@link #RETAINED_STAGING_BYTES}.
     */
    void endStaging() {
        for (DeviceBuffer b : retired) {
            b.close();
        }
        retired.clear();
        stagingUsed = 0;
        if (staging != null && staging.bytes() > RETAINED_STAGING_BYTES) {
            staging.close();
            staging = null;
        }
    }

    /** Destroys the objects; only when no submission of theirs can still be pending on the device. */
    void destroy() {
        endStaging();
        if (staging != null) {
            staging.close();
            staging = null;
        }
        if (timestamps != VK_NULL_HANDLE) {
            vkDestroyQueryPool(device.handle(), timestamps, null);
        }
        vkDestroyFence(device.handle(), fence, null);
        vkDestroyDescriptorPool(device.handle(), descriptorPool, null);
        vkDestroyCommandPool(device.handle(), commandPool, null);
    }
}
