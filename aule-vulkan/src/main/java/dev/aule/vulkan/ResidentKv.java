package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.CacheIndex;
import dev.aule.spi.Capabilities;
import dev.aule.spi.DeviceKv;

/**
 * The device copy of a {@link dev.aule.serving.KvCache} or {@link dev.aule.serving.PagedKvCache} built with the
 * {@code vulkan} backend: two {@link VulkanTensor}s, written a few rows at a time (each cache operation's in one submission, checked as {@link VulkanTensor#uploadRows} checks) and
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

    /** Every write checked first (nothing written on a bad one), then all in one submission. */
    @Override
    public void writeRows(int[] entries, int[] rows, Tensor[] keyRows, Tensor[] valueRows) {
        for (int i = 0; i < entries.length; i++) {
            keys.checkRows(keyRows[i], entries[i], rows[i]);
            values.checkRows(valueRows[i], entries[i], rows[i]);
        }
        Submission.run(device, (scope, s) -> {
            DeviceBuffer kb = VulkanBackend.use(scope, keys, "keys");
            DeviceBuffer vb = VulkanBackend.use(scope, values, "values");
            for (int i = 0; i < entries.length; i++) {
                s.writeRows(kb, keys.dtype(), keys.shape(), entries[i], rows[i], keyRows[i]);
                s.writeRows(vb, values.dtype(), values.shape(), entries[i], rows[i], valueRows[i]);
            }
        });
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
