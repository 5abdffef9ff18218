package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.spi.AttentionShape;

import java.util.List;
import java.util.Map;

/**
 * Records the kernels of forward and backward into a {@link Submission}, on buffers that already
 * hold contiguous BHSD data: the host path and the device-tensor path share it. Also checks, before
 * anything is allocated, that a call fits the device's buffer and dispatch limits.
 */
final class AttentionKernels {
    private AttentionKernels() {}

    /** The storage types of a forward call's inputs. */
    record InputTypes(DType q, DType k, DType v) {
        Map<String, Integer> defines() {
            return Map.of("Q_TYPE", Variant.typeCode(q), "K_TYPE", Variant.typeCode(k), "V_TYPE", Variant.typeCode(v));
        }
    }

    /** The storage types of a call's tensors; {@code dOut} is null for a forward. */
    record CallTypes(DType q, DType k, DType v, DType out, DType dOut) {}

    /** One buffer a call puts on the device: the argument it holds, its elements and their storage type. */
    private record Footprint(String name, long elements, DType dtype) {
        long bytes() {
            return elements * dtype.byteSize();
        }
    }

    /**
     * Rejects a call the device cannot run: a buffer over {@code maxStorageBufferRange}, a grid over
     * {@code maxComputeWorkGroupCount}, or indices over 2^31. The buffers counted are the ones the call
     * really allocates: inputs in their own dtype, out (forward) and the gradients (backward) in F32,
     * which the kernels compute in (16-bit results are rounded afterwards).
     *
     * @throws IllegalArgumentException naming the tensor, its size and the limit
     */
    static void checkLimits(DeviceInfo device, AttentionShape shape, boolean backward, CallTypes types) {
        long b = shape.batch();
        long qElements = b * shape.queryHeads() * shape.queryLen() * shape.headDim();
        long kElements = b * shape.kvHeads() * shape.keyLen() * shape.headDim();
        long vElements = b * shape.kvHeads() * shape.keyLen() * shape.valueDim();
        long outElements = b * shape.queryHeads() * shape.queryLen() * shape.valueDim();
        List<Footprint> buffers = new java.util.ArrayList<>(List.of(
                new Footprint("q", qElements, types.q()),
                new Footprint("k", kElements, types.k()),
                new Footprint("v", vElements, types.v())));
        if (backward) {
            buffers.add(new Footprint("out", outElements, types.out()));
            buffers.add(new Footprint("dOut", outElements, types.dOut()));
            buffers.add(new Footprint("dq", qElements, DType.F32));
            buffers.add(new Footprint("dk", kElements, DType.F32));
            buffers.add(new Footprint("dv", vElements, DType.F32));
        } else {
            buffers.add(new Footprint("out", outElements, DType.F32));
        }
        for (Footprint f : buffers) {
            if (f.bytes() > device.maxStorageBufferRange() || f.elements() >= Integer.MAX_VALUE) {
                throw new IllegalArgumentException(f.name() + ": " + f.elements() + " elements (" + mib(f.bytes())
                        + " as " + f.dtype() + " on the device) are over the device's maxStorageBufferRange of "
                        + mib(device.maxStorageBufferRange()) + " on " + device.name()
                        + "; split the call over batches or heads");
            }
        }
        int hd = TilePlan.bucket(shape.headDim(), shape.valueDim());
        TilePlan fwd = TilePlan.forward(device, hd);
        int[] max = device.maxWorkgroupCount();
        long tiles = ceilDiv(
                shape.queryLen(),
                backward ? Math.min(fwd.rows(), TilePlan.backward(device, hd).rows()) : fwd.rows());
        if (tiles > max[0]
                || shape.queryHeads() > max[1]
                || shape.batch() > max[2]
                || (backward
                        && ceilDiv(shape.keyLen(), TilePlan.backward(device, hd).keys()) > max[0])) {
            throw new IllegalArgumentException(
                    "q: " + shape.queryLen() + " rows, " + shape.queryHeads() + " heads, batch "
                            + shape.batch() + " need more workgroups than the device's maxComputeWorkGroupCount "
                            + java.util.Arrays.toString(max) + "; split the call");
        }
    }

    static void forward(
            VulkanDevice device,
            Submission s,
            AttentionShape shape,
            AttentionOptions options,
            InputTypes types,
            DeviceBuffer q,
            DeviceBuffer k,
            DeviceBuffer v,
            DeviceBuffer out,
            DeviceBuffer lse,
            boolean writeLse,
            DeviceBuffer slopes) {
        TilePlan plan = TilePlan.forward(device.info(), TilePlan.bucket(shape.headDim(), shape.valueDim()));
        Variant variant = Variant.of(Kernel.FORWARD, plan, types.defines());
        s.dispatch(
                variant,
                new DeviceBuffer[] {q, k, v, out, lse, slopes},
                Params.of(shape, options, writeLse),
                ceilDiv(shape.queryLen(), plan.rows()),
                shape.queryHeads(),
                shape.batch());
    }

    /** delta = rowsum(dOut * out), then dK and dV per key block, then dQ per query tile. */
    static void backward(
            VulkanDevice device,
            Submission s,
            AttentionShape shape,
            AttentionOptions options,
            InputTypes types,
            DType outType,
            DType dOutType,
            DeviceBuffer q,
            DeviceBuffer k,
            DeviceBuffer v,
            DeviceBuffer out,
            DeviceBuffer dOut,
            DeviceBuffer lse,
            DeviceBuffer delta,
            DeviceBuffer slopes,
            DeviceBuffer dq,
            DeviceBuffer dk,
            DeviceBuffer dv) {
        Params params = Params.of(shape, options, false);
        int rows = shape.batch() * shape.queryHeads() * shape.queryLen();
        TilePlan line = TilePlan.elementwise(device.info());
        Variant deltaVariant = Variant.of(
                Kernel.DELTA, line, Map.of("O_TYPE", Variant.typeCode(outType), "DO_TYPE", Variant.typeCode(dOutType)));
        int[] grid = grid(device.info(), ceilDiv(rows, line.workgroup()));
        s.dispatch(deltaVariant, new DeviceBuffer[] {out, dOut, delta}, params.withCount(rows), grid[0], grid[1], 1);

        TilePlan plan = TilePlan.backward(device.info(), TilePlan.bucket(shape.headDim(), shape.valueDim()));
        Map<String, Integer> defines = new java.util.HashMap<>(types.defines());
        defines.put("DO_TYPE", Variant.typeCode(dOutType));
        s.dispatch(
                Variant.of(Kernel.BACKWARD_KV, plan, defines),
                new DeviceBuffer[] {q, k, v, dOut, lse, delta, slopes, dk, dv},
                params,
                ceilDiv(shape.keyLen(), plan.keys()),
                shape.kvHeads(),
                shape.batch());
        s.dispatch(
                Variant.of(Kernel.BACKWARD_Q, plan, defines),
                new DeviceBuffer[] {q, k, v, dOut, lse, delta, slopes, dq},
                params,
                ceilDiv(shape.queryLen(), plan.rows()),
                shape.queryHeads(),
                shape.batch());
    }

    /** Rounds {@code count} F32 values of {@code from} into the packed 16-bit {@code to}. */
    static void pack16(
            VulkanDevice device,
            Submission s,
            AttentionShape shape,
            DeviceBuffer from,
            DeviceBuffer to,
            DType type,
            long count) {
        TilePlan line = TilePlan.elementwise(device.info());
        Variant variant = Variant.of(Kernel.PACK16, line, Map.of("OUT_TYPE", Variant.typeCode(type)));
        int[] grid = grid(device.info(), ceilDiv(ceilDiv(count, 2), line.workgroup()));
        s.dispatch(
                variant,
                new DeviceBuffer[] {from, to},
                Params.of(shape, AttentionOptions.defaults(), false).withCount(Math.toIntExact(count)),
                grid[0],
                grid[1],
                1);
    }

    /** A 2-D grid of {@code groups} workgroups within the device's per-dimension limit. */
    private static int[] grid(DeviceInfo device, long groups) {
        long x = Math.max(1, Math.min(groups, device.maxWorkgroupCount()[0]));
        return new int[] {(int) x, Math.toIntExact(ceilDiv(groups, x))};
    }

    private static String mib(long bytes) {
        return String.format(java.util.Locale.ROOT, "%.1f MiB", bytes / (double) (1 << 20));
    }

    static int ceilDiv(long a, long b) {
        return Math.toIntExact((a + b - 1) / b);
    }
}
