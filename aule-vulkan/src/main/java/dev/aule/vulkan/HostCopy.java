package dev.aule.vulkan;

import dev.aule.DType;
import dev.aule.Tensor;

import java.lang.foreign.MemorySegment;

/** Copies between caller tensors (any layout) and the contiguous BHSD buffers the kernels use. */
final class HostCopy {
    private HostCopy() {}

    /** A BHSD-contiguous view of {@code memory} with {@code shape}. */
    static Tensor view(MemorySegment memory, DType dtype, long[] shape) {
        long[] strides = {shape[1] * shape[2] * shape[3], shape[2] * shape[3], shape[3], 1};
        return Tensor.of(memory, dtype, shape, strides);
    }

    /** Bytes of a BHSD buffer of {@code shape} in {@code dtype}. */
    static long bytes(DType dtype, long[] shape) {
        return shape[0] * shape[1] * shape[2] * shape[3] * dtype.byteSize();
    }

    /**
     * Element-wise copy between tensors of one shape, rounding to {@code to}'s dtype (exact when the
     * dtypes are equal: 16-bit values round-trip through float unchanged).
     */
    static void copy(Tensor from, Tensor to) {
        float[] row = new float[from.headDim()];
        for (int b = 0; b < from.batch(); b++) {
            for (int h = 0; h < from.heads(); h++) {
                for (int s = 0; s < from.seqLen(); s++) {
                    from.readRow(b, h, s, row, 0);
                    to.writeRow(b, h, s, row, 0);
                }
            }
        }
    }

    /**
     * A device buffer of {@code scope} that holds {@code t} as contiguous BHSD in its own dtype once the
     * commands {@code s} records next run.
     */
    static DeviceBuffer upload(VulkanDevice device, Scope scope, Submission s, Tensor t) {
        DeviceBuffer buffer = scope.add(DeviceBuffer.allocate(device, bytes(t.dtype(), t.shape())));
        s.write(buffer, memory -> copy(t, view(memory, t.dtype(), t.shape())));
        return buffer;
    }

    /**
     * Reads a contiguous BHSD buffer of {@code dtype} into {@code to}, rounding to its dtype, once {@code s}
     * finished (nothing is written to {@code to} if it fails).
     */
    static void download(Submission s, DeviceBuffer buffer, DType dtype, Tensor to) {
        s.read(buffer, memory -> copy(view(memory, dtype, to.shape()), to));
    }
}
