package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.spi.AttentionShape;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.HashMap;
import java.util.Map;

/**
 * Records the masked forward ({@link Kernel#FORWARD_MASKED}: forward.comp with {@code MASKS}) of a call with a
 * dense mask, MaskMod, BlockMask or bias: uploads the {@link DeviceMasks} and dispatches one workgroup per
 * (query tile, query head, batch). Every masked call runs this kernel, whatever {@code -Daule.vulkan.kernel}
 * says: the decode and blocked kernels have no masked variant.
 */
final class MaskedForward {
    private MaskedForward() {}

    /**
     * The forward of a call: {@link #record} with {@code masks}, {@link AttentionKernels#forward} without (null).
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
        if (masks == null) {
            AttentionKernels.forward(device, scope, s, shape, options, types, q, k, v, out, lse, writeLse, slopes);
        } else {
            record(device, scope, s, shape, options, types, masks, q, k, v, out, lse, writeLse, slopes);
        }
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
        // k stands in for a buffer the call does not have: bound, never read (the header says so).
        DeviceBuffer bits = masks.bits == null ? k : upload(device, scope, s, masks.bits);
        DeviceBuffer bias = masks.bias == null ? k : upload(device, scope, s, masks.bias);
        DeviceBuffer meta = upload(device, scope, s, masks.meta);
        Map<String, Integer> defines = new HashMap<>(types.defines());
        defines.put("MASKS", 1);
        TilePlan plan = masks.plan;
        s.dispatch(
                Variant.of(Kernel.FORWARD_MASKED, plan, defines),
                new DeviceBuffer[] {q, k, v, out, lse, slopes, bits, bias, meta},
                Params.of(shape, options, writeLse),
                AttentionKernels.ceilDiv(shape.queryLen(), plan.rows()),
                shape.queryHeads(),
                shape.batch());
    }

    private static DeviceBuffer upload(VulkanDevice device, Scope scope, Submission s, int[] words) {
        DeviceBuffer buffer = scope.add(DeviceBuffer.allocate(device, (long) words.length * Integer.BYTES));
        s.write(buffer, memory -> MemorySegment.copy(words, 0, memory, ValueLayout.JAVA_INT, 0, words.length));
        return buffer;
    }

    private static DeviceBuffer upload(VulkanDevice device, Scope scope, Submission s, float[] values) {
        DeviceBuffer buffer = scope.add(DeviceBuffer.allocate(device, (long) values.length * Float.BYTES));
        s.write(buffer, memory -> MemorySegment.copy(values, 0, memory, ValueLayout.JAVA_FLOAT, 0, values.length));
        return buffer;
    }
}
