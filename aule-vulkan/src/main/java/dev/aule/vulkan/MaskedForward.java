package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.spi.AttentionShape;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.HashMap;
import java.util.Map;

/**
 * Records the masked forward of a call with a dense mask, MaskMod, BlockMask or bias: uploads the {@link
 * DeviceMasks} and dispatches one workgroup per (query tile, query head, batch) of the masked blocked kernel
 * ({@code forward_blocked.comp} with {@code MASKS}, in its subgroup layout where the plain one has it), or of the
 * masked plain tiled kernel ({@code forward.comp} with {@code MASKS}) where no blocked tile fits or {@code
 * -Daule.vulkan.kernel=forward} asks for it. The decode and cooperative-matrix kernels have no masked variant:
 * masked calls of their shapes, and masked calls while the property forces one of them, run the blocked kernel.
 */
final class MaskedForward {
    private MaskedForward() {}

    /**
     * The forward of a call: {@link #record} with {@code masks}, {@link AttentionKernels#forward} without (null),
     * with the device's coop status and the forced kernel.
     */
    static void forward(
            DeviceMasks masks,
            VulkanDevice device,
            Scope scope,
            Submission s,
            AttentionShape shape,
            AttentionOptions options,
            AttentionKernels.InputTypes types,
            DeviceBuffer q,
            DeviceBuffer k,
            DeviceBuffer v,
            DeviceBuffer out,
            DeviceBuffer lse,
            boolean writeLse,
            DeviceBuffer slopes) {
        forward(
                masks,
                device,
                scope,
                s,
                shape,
                options,
                types,
                q,
                k,
                v,
                out,
                lse,
                writeLse,
                slopes,
                device.coopStatus(),
                AttentionKernels.forcedKernel());
    }

    /**
     * As above with the coop kernel's status and the forced kernel given, which only an unmasked call uses (there
     * is no masked coop kernel).
     */
    static void forward(
            DeviceMasks masks,
            VulkanDevice device,
            Scope scope,
            Submission s,
            AttentionShape shape,
            AttentionOptions options,
            AttentionKernels.InputTypes types,
            DeviceBuffer q,
            DeviceBuffer k,
            DeviceBuffer v,
            DeviceBuffer out,
            DeviceBuffer lse,
            boolean writeLse,
            DeviceBuffer slopes,
            CoopCheck.Result coop,
            String forced) {
        if (masks == null) {
            AttentionKernels.forward(
                    device, scope, s, shape, options, types, q, k, v, out, lse, writeLse, slopes, coop, forced);
        } else {
            record(device, scope, s, shape, options, types, masks, q, k, v, out, lse, writeLse, slopes);
        }
    }

    /**
     * The masked kernel of a call and its tile plan (see the class comment).
     *
     * @throws IllegalArgumentException when {@code -Daule.vulkan.kernel} names no kernel (any other value but
     *     {@code forward} leaves the choice as described)
     */
    static AttentionKernels.ForwardChoice choose(DeviceInfo device, AttentionShape shape) {
        int hd = TilePlan.bucket(shape.headDim(), shape.valueDim());
        String noBlocked = AttentionKernels.forcedKernel().equals("forward")
                ? "forced by -D" + AttentionKernels.KERNEL_PROPERTY + "=forward"
                : AttentionKernels.blockedRefusal(device, shape);
        if (noBlocked == null) {
            boolean subgroup = TilePlan.blockedSubgroupLayout(device);
            return new AttentionKernels.ForwardChoice(
                    subgroup ? Kernel.FORWARD_BLOCKED_SUBGROUP_MASKED : Kernel.FORWARD_BLOCKED_MASKED,
                    TilePlan.blocked(device, hd),
                    1,
                    "masks: register-blocked tiles");
        }
        return new AttentionKernels.ForwardChoice(
                Kernel.FORWARD_MASKED,
                TilePlan.forward(device, hd),
                1,
                "masks: the plain tiled kernel (" + noBlocked + ")");
    }

    static void record(
            VulkanDevice device,
            Scope scope,
            Submission s,
            AttentionShape shape,
            AttentionOptions options,
            AttentionKernels.InputTypes types,
            DeviceMasks masks,
            DeviceBuffer q,
            DeviceBuffer k,
            DeviceBuffer v,
            DeviceBuffer out,
            DeviceBuffer lse,
            boolean writeLse,
            DeviceBuffer slopes) {
        long rows = (long) shape.batch() * shape.queryHeads() * shape.queryLen();
        if (options.hasSinks() && !writeLse) {
            // The sink pass needs each row's lse: into scratch when the caller wants none.
            lse = scope.add(DeviceBuffer.allocate(device, rows * Float.BYTES));
            writeLse = true;
        }
        // k stands in for a buffer the call does not have: bound, never read (the header says so).
        DeviceBuffer bits = masks.bits == null ? k : upload(device, scope, s, masks.bits);
        DeviceBuffer bias = masks.bias == null ? k : upload(device, scope, s, masks.bias);
        DeviceBuffer meta = upload(device, scope, s, masks.meta);
        Map<String, Integer> defines = new HashMap<>(types.defines());
        defines.put("MASKS", 1);
        TilePlan plan = masks.plan;
        Kernel kernel = masks.kernel;
        if (kernel != Kernel.FORWARD_MASKED) {
            // as AttentionKernels.forward defines the blocked kernel
            defines.put("HDP", plan.hd() + 1);
            defines.put("RM", plan.rowsPerThread());
            defines.put("SUBGROUP_LAYOUT", kernel == Kernel.FORWARD_BLOCKED_SUBGROUP_MASKED ? 1 : 0);
            defines.put("VEC4", shape.headDim() % 4 == 0 && shape.valueDim() % 4 == 0 ? 1 : 0);
        }
        // Split over bounded submissions like the unmasked forward (the kernels find their query tile from tileBase).
        AttentionKernels.dispatchTiles(
                s,
                device.info(),
                Variant.of(kernel, plan, defines),
                new DeviceBuffer[] {q, k, v, out, lse, slopes, bits, bias, meta},
                Params.of(shape, options, writeLse),
                AttentionKernels.ceilDiv(shape.queryLen(), plan.rows()),
                (long) plan.rows() * shape.keyLen() * shape.queryHeads() * shape.batch(),
                shape.queryHeads(),
                shape.batch());
        if (options.hasSinks()) {
            AttentionKernels.sinks(device, scope, s, shape, options, out, lse, rows);
        }
    }

    static DeviceBuffer upload(VulkanDevice device, Scope scope, Submission s, int[] words) {
        DeviceBuffer buffer = scope.add(DeviceBuffer.allocate(device, (long) words.length * Integer.BYTES));
        s.write(buffer, memory -> MemorySegment.copy(words, 0, memory, ValueLayout.JAVA_INT, 0, words.length));
        return buffer;
    }

    static DeviceBuffer upload(VulkanDevice device, Scope scope, Submission s, float[] values) {
        DeviceBuffer buffer = scope.add(DeviceBuffer.allocate(device, (long) values.length * Float.BYTES));
        s.write(buffer, memory -> MemorySegment.copy(values, 0, memory, ValueLayout.JAVA_FLOAT, 0, values.length));
        return buffer;
    }
}
