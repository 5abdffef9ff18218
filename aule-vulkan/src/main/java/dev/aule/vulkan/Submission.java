package dev.aule.vulkan;

import org.lwjgl.PointerBuffer;
import org.lwjgl.system.MemoryStack;
import org.lwjgl.vulkan.VK10;
import org.lwjgl.vulkan.VkBufferCopy;
import org.lwjgl.vulkan.VkCommandBuffer;
import org.lwjgl.vulkan.VkCommandBufferAllocateInfo;
import org.lwjgl.vulkan.VkCommandBufferBeginInfo;
import org.lwjgl.vulkan.VkCommandPoolCreateInfo;
import org.lwjgl.vulkan.VkDescriptorBufferInfo;
import org.lwjgl.vulkan.VkDescriptorPoolCreateInfo;
import org.lwjgl.vulkan.VkDescriptorPoolSize;
import org.lwjgl.vulkan.VkDescriptorSetAllocateInfo;
import org.lwjgl.vulkan.VkFenceCreateInfo;
import org.lwjgl.vulkan.VkMemoryBarrier;
import org.lwjgl.vulkan.VkSubmitInfo;
import org.lwjgl.vulkan.VkWriteDescriptorSet;

import java.nio.LongBuffer;

import static org.lwjgl.system.MemoryStack.stackPush;
import static org.lwjgl.vulkan.VK10.*;

/**
 * One batch of GPU work: its own command pool, command buffer, descriptor pool and fence, so calls
 * from many threads never share a recording object; only the queue submit itself is serialised
 * ({@link VulkanDevice#submit}). Every
 * command is followed by a full memory barrier (kernels of one call depend on each other in order).
 */
final class Submission implements AutoCloseable {
    private static final int MAX_SETS = 8;
    private static final long WAIT_NANOS = 10_000_000_000L; // per wait; a lavapipe kernel can take seconds
    /**
     * The longest a call waits for the device ({@code -Daule.vulkan.timeoutSeconds}, default 60 s; a lavapipe
     * kernel can take seconds). Past it the device is marked lost: work still in flight may yet touch the
     * call's buffers, command pool and fence, so those are deliberately leaked, never freed under the device.
     */
    static final long TIMEOUT_NANOS = timeoutNanos();

    private static long timeoutNanos() {
        String value = System.getProperty("aule.vulkan.timeoutSeconds", "60");
        try {
            double seconds = Double.parseDouble(value);
            if (seconds > 0 && seconds < 1e9) {
                return (long) (seconds * 1e9);
            }
        } catch (NumberFormatException ignored) {
            // falls through to the default below
        }
        return 60_000_000_000L;
    }

    private final VulkanDevice device;
    private final long commandPool;
    private final long descriptorPool;
    private final VkCommandBuffer commands;
    private int sets;
    private boolean abandoned;

    /** One call's device work: its buffers and kernels, and what to read back once the device is done. */
    @FunctionalInterface
    interface Work {
        /**
         * Allocates the call's buffers into {@code scope} and records its kernels into {@code submission}.
         *
         * @return what to run after the device finished (downloads), before the buffers are freed
         */
        Runnable record(Scope scope, Submission submission);
    }

    /**
     * The shape of every backend call: while the device is usable (under its use lock), {@code work} records
     * into one submission, which is submitted and waited for; then its read-back runs, and the scope frees
     * the buffers however the call ends.
     */
    static void run(VulkanDevice device, Work work) {
        device.whileUsable(() -> {
            try (Scope scope = new Scope()) {
                Runnable readBack;
                try (Submission s = new Submission(device)) {
                    readBack = work.record(scope, s);
                    try {
                        s.submitAndWait();
                    } catch (RuntimeException e) {
                        if (s.abandoned) {
                            scope.abandon(); // in-flight work may still use them
                        }
                        throw e;
                    }
                }
                readBack.run();
            }
            return null;
        });
    }

    Submission(VulkanDevice device) {
        this.device = device;
        long pool = VK_NULL_HANDLE;
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
            long descriptors = device.create(
                    VK10::vkCreateDescriptorPool,
                    VkDescriptorPoolCreateInfo.calloc(stack)
                            .sType$Default()
                            .maxSets(MAX_SETS)
                            .pPoolSizes(sizes),
                    "vkCreateDescriptorPool");
            PointerBuffer cb = stack.mallocPointer(1);
            int result = vkAllocateCommandBuffers(
                    device.handle(),
                    VkCommandBufferAllocateInfo.calloc(stack)
                            .sType$Default()
                            .commandPool(pool)
                            .level(VK_COMMAND_BUFFER_LEVEL_PRIMARY)
                            .commandBufferCount(1),
                    cb);
            if (result != VK_SUCCESS) {
                vkDestroyDescriptorPool(device.handle(), descriptors, null);
                VulkanDevice.check(result, "vkAllocateCommandBuffers");
            }
            this.commands = new VkCommandBuffer(cb.get(0), device.handle());
            this.commandPool = pool;
            this.descriptorPool = descriptors;
            VulkanDevice.check(
                    vkBeginCommandBuffer(
                            commands,
                            VkCommandBufferBeginInfo.calloc(stack)
                                    .sType$Default()
                                    .flags(VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT)),
                    "vkBeginCommandBuffer");
        } catch (RuntimeException e) {
            if (pool != VK_NULL_HANDLE) {
                vkDestroyCommandPool(device.handle(), pool, null);
            }
            throw e;
        }
    }

    /** Records one dispatch of {@code variant} over {@code groups} workgroups with the buffers bound in order. */
    void dispatch(Variant variant, DeviceBuffer[] buffers, Params params, int gx, int gy, int gz) {
        Kernel kernel = variant.kernel();
        if (buffers.length != kernel.bindings) {
            throw new IllegalStateException(kernel + " binds " + kernel.bindings + " buffers, got " + buffers.length);
        }
        if (sets == MAX_SETS) {
            throw new IllegalStateException("a submission holds at most " + MAX_SETS + " dispatches");
        }
        long pipeline = device.pipelines().pipeline(variant);
        Pipelines pipelines = device.pipelines();
        try (MemoryStack stack = stackPush()) {
            LongBuffer set = stack.mallocLong(1);
            VulkanDevice.check(
                    vkAllocateDescriptorSets(
                            device.handle(),
                            VkDescriptorSetAllocateInfo.calloc(stack)
                                    .sType$Default()
                                    .descriptorPool(descriptorPool)
                                    .pSetLayouts(stack.longs(pipelines.descriptorSetLayout(kernel))),
                            set),
                    "vkAllocateDescriptorSets");
            sets++;
            VkWriteDescriptorSet.Buffer writes = VkWriteDescriptorSet.calloc(buffers.length, stack);
            for (int i = 0; i < buffers.length; i++) {
                VkDescriptorBufferInfo.Buffer info = VkDescriptorBufferInfo.calloc(1, stack);
                info.get(0).buffer(buffers[i].handle()).offset(0).range(VK_WHOLE_SIZE);
                writes.get(i)
                        .sType$Default()
                        .dstSet(set.get(0))
                        .dstBinding(i)
                        .descriptorCount(1)
                        .descriptorType(VK_DESCRIPTOR_TYPE_STORAGE_BUFFER)
                        .pBufferInfo(info);
            }
            vkUpdateDescriptorSets(device.handle(), writes, null);
            vkCmdBindPipeline(commands, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline);
            vkCmdBindDescriptorSets(
                    commands, VK_PIPELINE_BIND_POINT_COMPUTE, pipelines.pipelineLayout(kernel), 0, set, null);
            vkCmdPushConstants(
                    commands, pipelines.pipelineLayout(kernel), VK_SHADER_STAGE_COMPUTE_BIT, 0, params.words());
            vkCmdDispatch(commands, gx, gy, gz);
            barrier(stack);
        }
    }

    void copy(DeviceBuffer from, DeviceBuffer to) {
        try (MemoryStack stack = stackPush()) {
            VkBufferCopy.Buffer region = VkBufferCopy.calloc(1, stack);
            region.get(0).size(Math.min(from.bytes(), to.bytes()));
            vkCmdCopyBuffer(commands, from.handle(), to.handle(), region);
            barrier(stack);
        }
    }

    private void barrier(MemoryStack stack) {
        VkMemoryBarrier.Buffer b = VkMemoryBarrier.calloc(1, stack);
        b.get(0)
                .sType$Default()
                .srcAccessMask(VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT)
                .dstAccessMask(VK_ACCESS_SHADER_READ_BIT
                        | VK_ACCESS_SHADER_WRITE_BIT
                        | VK_ACCESS_TRANSFER_READ_BIT
                        | VK_ACCESS_TRANSFER_WRITE_BIT
                        | VK_ACCESS_HOST_READ_BIT);
        vkCmdPipelineBarrier(
                commands,
                VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT | VK_PIPELINE_STAGE_HOST_BIT,
                0,
                b,
                null,
                null);
    }

    /**
     * Ends recording, submits under the device's queue lock and waits for the GPU.
     *
     * @throws VulkanException on a lost device (the device is then marked unusable) or another failure
     */
    void submitAndWait() {
        try (MemoryStack stack = stackPush()) {
            VulkanDevice.check(vkEndCommandBuffer(commands), "vkEndCommandBuffer");
            long fence = device.create(
                    VK10::vkCreateFence, VkFenceCreateInfo.calloc(stack).sType$Default(), "vkCreateFence");
            try {
                VkSubmitInfo submit =
                        VkSubmitInfo.calloc(stack).sType$Default().pCommandBuffers(stack.pointers(commands));
                int result = device.submit(submit, fence);
                checkLost(result, "vkQueueSubmit");
                long deadline = System.nanoTime() + TIMEOUT_NANOS;
                do {
                    long left = Math.max(0, Math.min(WAIT_NANOS, deadline - System.nanoTime()));
                    result = vkWaitForFences(device.handle(), fence, true, left);
                } while (result == VK_TIMEOUT && deadline - System.nanoTime() > 0);
                if (result == VK_TIMEOUT) {
                    abandoned = true;
                    String why = "the device did not finish a call within " + TIMEOUT_NANOS / 1e9
                            + " s (-Daule.vulkan.timeoutSeconds)";
                    device.markLost(why);
                    throw new VulkanException(why + "; the device is marked lost");
                }
                checkLost(result, "vkWaitForFences");
            } finally {
                if (!abandoned) {
                    vkDestroyFence(device.handle(), fence, null);
                }
            }
        }
    }

    private void checkLost(int result, String what) {
        if (result == VK_ERROR_DEVICE_LOST) {
            device.markLost(what + " returned VK_ERROR_DEVICE_LOST");
        }
        VulkanDevice.check(result, what);
    }

    @Override
    public void close() {
        if (abandoned) {
            return; // a pending command buffer may still reference both pools
        }
        vkDestroyDescriptorPool(device.handle(), descriptorPool, null);
        vkDestroyCommandPool(device.handle(), commandPool, null);
    }
}
