package dev.aule.vulkan;

import org.lwjgl.system.MemoryStack;
import org.lwjgl.vulkan.VkBufferCopy;
import org.lwjgl.vulkan.VkCommandBuffer;
import org.lwjgl.vulkan.VkCommandBufferBeginInfo;
import org.lwjgl.vulkan.VkDescriptorBufferInfo;
import org.lwjgl.vulkan.VkDescriptorSetAllocateInfo;
import org.lwjgl.vulkan.VkMemoryBarrier;
import org.lwjgl.vulkan.VkSubmitInfo;
import org.lwjgl.vulkan.VkWriteDescriptorSet;

import java.lang.foreign.MemorySegment;
import java.nio.LongBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

import static org.lwjgl.system.MemoryStack.stackPush;
import static org.lwjgl.vulkan.VK10.*;

/**
 * One batch of GPU work, recorded into a {@link SubmitContext} that no other submission uses meanwhile (the
 * device's {@link ContextPool} lends it and takes it back when this closes), so calls from many threads never
 * share a recording object; only the queue submit itself is serialised ({@link VulkanDevice#submit}). A
 * call's uploads, kernels and read-backs go into this one submission: one submit and one wait per call.
 * Every command is followed by a full memory barrier (the commands of one call depend on each other in
 * order).
 */
final class Submission implements AutoCloseable {
    private static final long WAIT_NANOS = 10_000_000_000L; // per wait; a lavapipe kernel can take seconds
    /**
     * The longest a call waits for the device ({@code -Daule.vulkan.timeoutSeconds}, default 60 s; a lavapipe
     * kernel can take seconds). Past it the device is marked lost: work still in flight may yet touch the
     * call's buffers and its context (command pool, descriptor pool, fence), so those are deliberately leaked,
     * never freed under the device.
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
    private SubmitContext context; // taken on first need: host-only work on mapped buffers takes none
    private VkCommandBuffer commands;
    private final List<Runnable> afterWait = new ArrayList<>();
    private int sets;
    private boolean recorded;
    private boolean submitted;
    private boolean waited;
    private boolean abandoned;
    /** Device time of the parts submitted so far ({@link #flush}), -1 once one was not measured. */
    private long deviceNanos;

    /** One call's device work: its buffers, host data in and out, and kernels. */
    @FunctionalInterface
    interface Work {
        /**
         * Allocates the call's buffers into {@code scope} and records its uploads, kernels and read-backs into
         * {@code submission}.
         */
        void record(Scope scope, Submission submission);
    }

    /**
     * A call's device work that makes something for its caller (a device tensor).
     *
     * @param <T> what it makes
     */
    @FunctionalInterface
    interface Call<T> {
        /**
         * Records as {@link Work#record} does.
         *
         * @return what the call makes, handed to the caller once the submission finished
         */
        T record(Scope scope, Submission submission);
    }

    /**
     * The shape of every backend call: while the device is usable (under its use lock), {@code work} records
     * into one submission, which is submitted once and waited for; then its read-backs run, and the scope frees
     * the buffers however the call ends.
     */
    static void run(VulkanDevice device, Work work) {
        call(device, (scope, s) -> {
            work.record(scope, s);
            return null;
        });
    }

    /** As {@link #run}, returning what {@code call} made; its {@link Scope#keepOnSuccess} resources survive. */
    static <T> T call(VulkanDevice device, Call<T> call) {
        return device.whileUsable(() -> {
            try (Scope scope = new Scope();
                    Submission s = new Submission(device)) {
                T made = call.record(scope, s);
                try {
                    s.finish();
                } catch (RuntimeException e) {
                    if (s.abandoned) {
                        scope.abandon(); // in-flight work may still use them
                    }
                    throw e;
                }
                scope.succeeded();
                return made;
            }
        });
    }

    Submission(VulkanDevice device) {
        this.device = device;
    }

    /** The context recording this submission, taken from the pool and begun on first use. */
    private SubmitContext context() {
        if (context != null) {
            return context;
        }
        SubmitContext c = device.contexts().take();
        try {
            begin(c);
        } catch (RuntimeException e) {
            device.contexts().destroy(c);
            throw e;
        }
        context = c;
        commands = c.commands();
        return c;
    }

    /** Resets {@code c} (its previous work was waited for) and begins its command buffer, timestamp first. */
    private static void begin(SubmitContext c) {
        try (MemoryStack stack = stackPush()) {
            c.reset();
            VulkanDevice.check(
                    vkBeginCommandBuffer(
                            c.commands(),
                            VkCommandBufferBeginInfo.calloc(stack)
                                    .sType$Default()
                                    .flags(VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT)),
                    "vkBeginCommandBuffer");
            if (c.timestamps() != VK_NULL_HANDLE) {
                vkCmdResetQueryPool(c.commands(), c.timestamps(), 0, 2);
                vkCmdWriteTimestamp(c.commands(), VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, c.timestamps(), 0);
            }
        }
    }

    /**
     * Submits what was recorded so far and waits for it, then goes on recording into the same context's command
     * buffer, begun afresh: a long grid split into parts ({@link AttentionKernels}) runs as several submissions,
     * none long enough for a display watchdog. Staging regions and read-backs recorded so far stay valid (staging
     * is released only when the whole submission is done); the device times of the parts add up.
     *
     * @throws VulkanException as {@link #finish} does
     */
    void flush() {
        if (!recorded) {
            return;
        }
        submitAndWait();
        begin(context);
        recorded = false;
        sets = 0;
    }

    /**
     * Records one dispatch of {@code variant} over {@code groups} workgroups with the buffers bound in order, once
     * {@link DeviceLimits#checkLaunch} found that the device can run it.
     *
     * @throws IllegalArgumentException when the launch is over one of the device's limits (nothing is recorded)
     */
    void dispatch(Variant variant, DeviceBuffer[] buffers, Params params, int gx, int gy, int gz) {
        Kernel kernel = variant.kernel();
        if (buffers.length != kernel.bindings) {
            throw new IllegalStateException(kernel + " binds " + kernel.bindings + " buffers, got " + buffers.length);
        }
        if (sets == SubmitContext.MAX_SETS) {
            throw new IllegalStateException("a submission holds at most " + SubmitContext.MAX_SETS + " dispatches");
        }
        long[] bound = new long[buffers.length];
        for (int i = 0; i < buffers.length; i++) {
            bound[i] = buffers[i].bytes(); // bound whole (VK_WHOLE_SIZE)
        }
        DeviceLimits.checkLaunch(device.info(), variant, bound, gx, gy, gz);
        long pipeline = device.pipelines().pipeline(variant);
        Pipelines pipelines = device.pipelines();
        SubmitContext c = context(); // sets commands
        try (MemoryStack stack = stackPush()) {
            LongBuffer set = stack.mallocLong(1);
            VulkanDevice.check(
                    vkAllocateDescriptorSets(
                            device.handle(),
                            VkDescriptorSetAllocateInfo.calloc(stack)
                                    .sType$Default()
                                    .descriptorPool(c.descriptorPool())
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
            recorded = true;
            barrier(stack);
        }
    }

    /**
     * Lets {@code fill} write all of {@code to}'s bytes. On a mapped buffer they are written now, in place;
     * otherwise into staging, copied into {@code to} by this submission before anything recorded later. Either
     * way the bytes are in place before the commands recorded after this run, so write a buffer only before
     * the commands of this submission that use it.
     */
    void write(DeviceBuffer to, Consumer<MemorySegment> fill) {
        if (to.mapped() != null) {
            fill.accept(to.mapped());
            return;
        }
        SubmitContext.Region region = context().stage(to.bytes());
        fill.accept(region.memory());
        copy(region.buffer(), region.offset(), to, 0, to.bytes());
    }

    /**
     * Writes {@code src} {@code [b, H, n, D]} into rows {@code [seqStart, seqStart + n)} of entries {@code
     * [batchStart, batchStart + b)} of {@code to}, a BHSD buffer of {@code shape} in {@code dtype}, before the
     * commands recorded after this; the other rows are not touched. Mapped: in place, through a strided view;
     * otherwise staged contiguously and copied as one region per (entry, head).
     */
    void writeRows(
            DeviceBuffer to, dev.aule.DType dtype, long[] shape, int batchStart, int seqStart, dev.aule.Tensor src) {
        long rowBytes = shape[3] * dtype.byteSize();
        long[] rows = src.shape();
        long first = (batchStart * shape[1] * shape[2] + seqStart) * rowBytes; // row seqStart of the first entry
        if (to.mapped() != null) {
            long[] strides = {shape[1] * shape[2] * shape[3], shape[2] * shape[3], shape[3], 1};
            HostCopy.copy(src, dev.aule.Tensor.of(to.mapped().asSlice(first), dtype, rows, strides));
            return;
        }
        long run = rows[2] * rowBytes;
        int runs = Math.toIntExact(rows[0] * rows[1]);
        SubmitContext.Region region = context().stage(run * runs);
        HostCopy.copy(src, HostCopy.view(region.memory(), dtype, rows));
        // On the heap, not the stack: B * H regions of 24 bytes may outgrow LWJGL's 64 KiB stack.
        VkBufferCopy.Buffer regions = VkBufferCopy.calloc(runs);
        try (MemoryStack stack = stackPush()) {
            for (int i = 0; i < runs; i++) {
                regions.get(i)
                        .srcOffset(region.offset() + i * run)
                        .dstOffset(first + i * shape[2] * rowBytes)
                        .size(run);
            }
            vkCmdCopyBuffer(context().commands(), region.buffer().handle(), to.handle(), regions);
            recorded = true;
            barrier(stack);
        } finally {
            regions.free();
        }
    }

    /**
     * Lets {@code use} read all of {@code from}'s bytes as the commands recorded so far leave them, once the
     * device finished this submission (on a mapped buffer in place, otherwise from staging that this submission
     * copies them into). {@code use} runs only if the submission succeeds.
     */
    void read(DeviceBuffer from, Consumer<MemorySegment> use) {
        if (from.mapped() != null) {
            afterWait.add(() -> use.accept(from.mapped()));
            return;
        }
        SubmitContext.Region region = context().stage(from.bytes());
        copy(from, 0, region.buffer(), region.offset(), from.bytes());
        afterWait.add(() -> use.accept(region.memory()));
    }

    /** Sets all of {@code b}'s bytes to zero: now, in place, when it is mapped; else with a fill command. */
    void zero(DeviceBuffer b) {
        if (b.mapped() != null) {
            b.mapped().fill((byte) 0);
            return;
        }
        try (MemoryStack stack = stackPush()) {
            vkCmdFillBuffer(context().commands(), b.handle(), 0, VK_WHOLE_SIZE, 0);
            recorded = true;
            barrier(stack);
        }
    }

    private void copy(DeviceBuffer from, long fromOffset, DeviceBuffer to, long toOffset, long bytes) {
        try (MemoryStack stack = stackPush()) {
            VkBufferCopy.Buffer region = VkBufferCopy.calloc(1, stack);
            region.get(0).srcOffset(fromOffset).dstOffset(toOffset).size(bytes);
            vkCmdCopyBuffer(context().commands(), from.handle(), to.handle(), region);
            recorded = true;
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
     * Submits what was recorded (nothing when no command was: host-only work on mapped buffers) and waits for
     * it, then runs the read-backs.
     *
     * @throws VulkanException on a lost device (the device is then marked unusable) or another failure
     */
    void finish() {
        if (recorded) {
            submitAndWait();
        }
        if (submitted) {
            device.noteDeviceNanos(deviceNanos);
        }
        for (Runnable r : afterWait) {
            r.run();
        }
    }

    /** Ends recording, submits under the device's queue lock and waits for the GPU. */
    private void submitAndWait() {
        try (MemoryStack stack = stackPush()) {
            if (context.timestamps() != VK_NULL_HANDLE) {
                vkCmdWriteTimestamp(commands, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, context.timestamps(), 1);
            }
            VulkanDevice.check(vkEndCommandBuffer(commands), "vkEndCommandBuffer");
            long fence = context.fence();
            VkSubmitInfo submit = VkSubmitInfo.calloc(stack).sType$Default().pCommandBuffers(stack.pointers(commands));
            submitted = true;
            waited = false;
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
            waited = true;
            long nanos = measuredNanos();
            deviceNanos = nanos < 0 || deviceNanos < 0 ? -1 : deviceNanos + nanos;
        }
    }

    /**
     * Device time from the first command to the last of this completed submission, from its two timestamps (the
     * counter's valid bits, wrapping, times the tick period); -1 when the queue has none or they are unavailable.
     */
    private long measuredNanos() {
        long pool = context.timestamps();
        if (pool == VK_NULL_HANDLE) {
            return -1;
        }
        try (MemoryStack stack = stackPush()) {
            LongBuffer ticks = stack.mallocLong(2);
            int result = vkGetQueryPoolResults(device.handle(), pool, 0, 2, ticks, Long.BYTES, VK_QUERY_RESULT_64_BIT);
            if (result != VK_SUCCESS) {
                return -1;
            }
            int bits = device.timestampBits();
            long mask = bits >= 64 ? -1L : (1L << bits) - 1;
            long elapsed = (ticks.get(1) - ticks.get(0)) & mask;
            return Math.round(elapsed * (double) device.timestampPeriod());
        }
    }

    private void checkLost(int result, String what) {
        if (result == VK_ERROR_DEVICE_LOST) {
            device.markLost(what + " returned VK_ERROR_DEVICE_LOST");
        }
        VulkanDevice.check(result, what);
    }

    /**
     * Gives the context back for the next submission once this one is done with it: after a completed wait, or
     * when nothing was submitted. A failed submit or wait (a lost device) destroys it, as nothing of it is
     * pending then; a timed-out wait leaks it, as the device may still run its command buffer.
     */
    @Override
    public void close() {
        if (context == null) {
            return;
        }
        ContextPool pool = device.contexts();
        if (abandoned) {
            pool.leak(context);
        } else if (submitted && !waited) {
            pool.destroy(context);
        } else {
            pool.giveBack(context);
        }
    }
}
