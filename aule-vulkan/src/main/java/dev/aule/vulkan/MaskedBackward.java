package dev.aule.vulkan;

import java.util.Arrays;

/**
 * The device side of a masked backward: puts a call's {@link DeviceMasks} (cut for the backward's plan, {@link
 * DeviceMasks#forBackward}) on the device and appends them to the bindings of the masked backward kernels
 * ({@link Kernel#BACKWARD_KV_MASKED}, {@link Kernel#BACKWARD_Q_MASKED}), which {@link AttentionKernels#backward}
 * records.
 */
/*
 * Maintainer invariants: both kernels share one tile table (the backward's plan is square, BR = BC), so one
 * upload serves both; the mask buffers follow each kernel's own bindings (backward_kv.comp 9 .. 11,
 * backward_q.comp 8 .. 10), in the order bits, bias, meta. A buffer the call lacks (bits or bias) is bound as a
 * placeholder the shader never reads (meta says what is there).
 */
final class MaskedBackward {
    private MaskedBackward() {}

    /**
     * Uploads {@code masks} into buffers owned by {@code scope}.
     *
     * @param placeholder bound where the call has no bits or no bias
     * @return bits, bias and meta on the device, or null when {@code masks} is null
     */
    static DeviceBuffer[] upload(
            VulkanDevice device, Scope scope, Submission s, DeviceMasks masks, DeviceBuffer placeholder) {
        if (masks == null) {
            return null;
        }
        DeviceBuffer bits = masks.bits == null ? placeholder : MaskedForward.upload(device, scope, s, masks.bits);
        DeviceBuffer bias = masks.bias == null ? placeholder : MaskedForward.upload(device, scope, s, masks.bias);
        DeviceBuffer meta = MaskedForward.upload(device, scope, s, masks.meta);
        return new DeviceBuffer[] {bits, bias, meta};
    }

    /** {@return a kernel's own bindings followed by the mask buffers, or its own alone without masks} */
    static DeviceBuffer[] bind(DeviceBuffer[] own, DeviceBuffer[] masks) {
        if (masks == null) {
            return own;
        }
        DeviceBuffer[] all = Arrays.copyOf(own, own.length + masks.length);
        System.arraycopy(masks, 0, all, own.length, masks.length);
        return all;
    }
}
