package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.Tensor;
import dev.aule.spi.AttentionShape;
import dev.aule.spi.CacheIndex;
import dev.aule.spi.Capabilities;
import dev.aule.spi.PagedKv;
import dev.aule.spi.ServingShapes;

/**
 * Serving calls with host queries and outputs on device-resident caches ({@link ResidentKv}): q is uploaded, the
 * caches are bound where they live, out and lse are read back, all in one submission. Validation is
 * {@link ServingCalls}' (ServingShapes on the caches' stand-ins and on copies of the lengths and tables, then the
 * device's limits) before anything is allocated.
 */
final class ResidentCalls {
    private ResidentCalls() {}

    static void cached(
            VulkanDevice device,
            Capabilities caps,
            Tensor q,
            VulkanTensor kCache,
            VulkanTensor vCache,
            CacheIndex index,
            Tensor out,
            Tensor lse,
            AttentionOptions options) {
        Tensor k = VulkanBackend.standIn(device, kCache, "kCache");
        Tensor v = VulkanBackend.standIn(device, vCache, "vCache");
        if (index.isPlain()) {
            int[] lens = index.cacheLens() == null ? null : index.cacheLens().clone(); // validated and uploaded
            AttentionShape shape = ServingShapes.cached(q, k, v, lens, out, lse, options, caps);
            AttentionKernels.checkLimits(
                    device.info(),
                    shape,
                    false,
                    new AttentionKernels.CallTypes(q.dtype(), k.dtype(), v.dtype(), out.dtype(), null));
            Submission.run(device, (scope, s) -> {
                DeviceBuffer kb = VulkanBackend.use(scope, kCache, "kCache");
                DeviceBuffer vb = VulkanBackend.use(scope, vCache, "vCache");
                DeviceBuffer qb = HostCopy.upload(device, scope, s, q);
                ServingKeys keys = ServingKeys.cached(device, scope, s, lens);
                ServingCalls.runHost(
                        device, scope, s, shape, options, ServingCalls.inputs(q, k, v), qb, kb, vb, keys, out, lse);
            });
            return;
        }
        ServingShapes.CachedCall call = ServingShapes.cached(q, k, v, index, out, lse, options, caps);
        ServingCalls.checkPoolLimits(
                device, call.shape(), q.dtype(), k.dtype(), k.shape(), v.dtype(), v.shape(), out.dtype());
        Submission.run(device, (scope, s) -> {
            DeviceBuffer kb = VulkanBackend.use(scope, kCache, "kCache");
            DeviceBuffer vb = VulkanBackend.use(scope, vCache, "vCache");
            DeviceBuffer qb = HostCopy.upload(device, scope, s, q);
            ServingKeys keys = ServingCalls.keys(device, scope, s, call);
            ServingCalls.runHost(
                    device, scope, s, call.shape(), options, ServingCalls.inputs(q, k, v), qb, kb, vb, keys, out, lse);
        });
    }

    static void paged(
            VulkanDevice device,
            Capabilities caps,
            Tensor q,
            VulkanTensor kCache,
            VulkanTensor vCache,
            int[][] blockTables,
            int[] contextLens,
            Tensor out,
            Tensor lse,
            AttentionOptions options) {
        Tensor k = VulkanBackend.standIn(device, kCache, "kCache");
        Tensor v = VulkanBackend.standIn(device, vCache, "vCache");
        ServingShapes.PagedCall call =
                ServingShapes.paged(q, new PagedKv(k, v, blockTables, contextLens), out, lse, options, caps);
        ServingCalls.checkPoolLimits(
                device, call.shape(), q.dtype(), k.dtype(), k.shape(), v.dtype(), v.shape(), out.dtype());
        Submission.run(device, (scope, s) -> {
            DeviceBuffer kb = VulkanBackend.use(scope, kCache, "kCache");
            DeviceBuffer vb = VulkanBackend.use(scope, vCache, "vCache");
            DeviceBuffer qb = HostCopy.upload(device, scope, s, q);
            ServingKeys keys = ServingKeys.paged(device, scope, s, call.blockTables(), call.contextLens(), k.seqLen());
            ServingCalls.runHost(
                    device, scope, s, call.shape(), options, ServingCalls.inputs(q, k, v), qb, kb, vb, keys, out, lse);
        });
    }
}
