package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.CacheIndex;
import dev.aule.spi.Capabilities;
import dev.aule.spi.DeviceKv;

/**
 * The device copy of a {@link dev.aule.serving.KvCache} or {@link dev.aule.serving.PagedKvCache} built with the
 * {@code vulkan} backend: two {@link VulkanTensor}s, written row by row through {@link VulkanTensor#uploadRows} and
 * read in place by {@link ResidentCalls}.
 */
final class ResidentKv implements DeviceKv {
    private final VulkanDevice device;
    private final Capabilities caps;
    private final VulkanTensor keys;
    private final VulkanTensor values;

    private ResidentKv(VulkanDevice device, Capabilities caps, VulkanTensor keys, VulkanTensor values) {
        this.device = device;
        this.caps = caps;
        this.keys = keys;
        this.values = values;
    }

    /** Zeroed keys and values on {@code backend}'s device; the keys are freed when the values do not fit. */
    static ResidentKv allocate(
            VulkanBackend backend, Capabilities caps, DType dtype, long[] keyShape, long[] valueShape) {
        for (long[] shape : new long[][] {keyShape, valueShape}) {
            if (shape.length != 4
                    || shape[0] > Integer.MAX_VALUE
                    || shape[1] > Integer.MAX_VALUE
                    || shape[2] > Integer.MAX_VALUE
                    || shape[3] > Integer.MAX_VALUE) {
                throw new IllegalArgumentException("keyShape, valueShape: " + java.util.Arrays.toString(keyShape) + ", "
                        + java.util.Arrays.toString(valueShape) + " must be four extents each under 2^31");
            }
        }
        VulkanTensor k =
                backend.allocate(dtype, (int) keyShape[0], (int) keyShape[1], (int) keyShape[2], (int) keyShape[3]);
        try {
            VulkanTensor v = backend.allocate(
                    dtype, (int) valueShape[0], (int) valueShape[1], (int) valueShape[2], (int) valueShape[3]);
            return new ResidentKv(backend.device(), caps, k, v);
        } catch (RuntimeException e) {
            k.close();
            throw e;
        }
    }

    @Override
    public String backend() {
        return "vulkan";
    }

    @Override
    public Capabilities capabilities() {
        return caps;
    }

    @Override
    public long bytes() {
        return HostCopy.bytes(keys.dtype(), keys.shape()) + HostCopy.bytes(values.dtype(), values.shape());
    }

    @Override
    public void writeRows(boolean value, Tensor rows, int entry, int row) {
        (value ? values : keys).uploadRows(rows, entry, row);
    }

    @Override
    public void forwardCached(Tensor q, CacheIndex index, Tensor out, Tensor lse, AttentionOptions options) {
        ResidentCalls.cached(device, caps, q, keys, values, index, out, lse, options);
    }

    @Override
    public void forwardPaged(
            Tensor q, int[][] blockTables, int[] contextLens, Tensor out, Tensor lse, AttentionOptions options) {
        ResidentCalls.paged(device, caps, q, keys, values, blockTables, contextLens, out, lse, options);
    }

    @Override
    public void close() {
        try {
            keys.close();
        } finally {
            values.close();
        }
    }
}
