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

import static org.lwjgl.system.MemoryStack.stackPush;
import static org.lwjgl.vulkan.VK10.*;

/**
 * The recording objects one {@link Submission} needs: a command pool with its one command buffer, a descriptor
 * pool and a fence. Made once and reset between submissions ({@link #reset}) instead of created and destroyed
 * per call; {@link ContextPool} lends them out, one submission at a time.
 */
final class SubmitContext {
    /** Descriptor sets, hence dispatches, one submission may hold. */
    static final int MAX_SETS = 8;

    private final VulkanDevice device;
    private final long commandPool;
    private final long descriptorPool;
    private final long fence;
    private final VkCommandBuffer commands;

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

    /** Destroys the objects; only when no submission of theirs can still be pending on the device. */
    void destroy() {
        vkDestroyFence(device.handle(), fence, null);
        vkDestroyDescriptorPool(device.handle(), descriptorPool, null);
        vkDestroyCommandPool(device.handle(), commandPool, null);
    }
}
