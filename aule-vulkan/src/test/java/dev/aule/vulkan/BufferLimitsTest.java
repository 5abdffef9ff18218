package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Gradients;
import dev.aule.Tensor;
import dev.aule.spi.AttentionShape;
import dev.aule.spi.BackwardInputs;
import dev.aule.spi.Capabilities;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The size limit counts what a call really puts on the device: 16-bit inputs at two bytes an element,
 * outputs and gradients at four (the kernels compute them in F32). On a made-up device with a 1 MiB
 * {@code maxStorageBufferRange}, so no device and no large buffer is needed.
 */
class BufferLimitsTest {
    private static final long MIB = 1L << 20;
    private static final Capabilities CAPABILITIES = new VulkanBackend().capabilities();
    private static final DeviceInfo DEVICE = new DeviceInfo(
            0,
            "1 MiB device",
            DeviceInfo.Kind.DISCRETE_GPU,
            "1.1.0",
            8,
            32 * 1024,
            MIB,
            1024,
            1024,
            new int[] {65535, 65535, 65535},
            false,
            false,
            false,
            false);

    // q and k: 4 x 1024 x 96 elements, 0.75 MiB in F16 (1.5 MiB if counted as F32); v and out: 0.5 MiB as F32.
    private final Tensor q = Tensor.allocate(DType.F16, 1, 4, 1024, 96);
    private final Tensor k = Tensor.allocate(DType.F16, 1, 4, 1024, 96);
    private final Tensor v = Tensor.allocate(DType.F16, 1, 4, 1024, 32);

    @Test
    void sixteenBitInputsCountAtTheirOwnSize() {
        Tensor out = Tensor.allocate(DType.F16, 1, 4, 1024, 32);
        AttentionKernels.checkLimits(DEVICE, forward(out), false, types(out));
    }

    @Test
    void aSixteenBitOutputCountsAsF32() {
        Tensor wideV = Tensor.allocate(DType.F16, 1, 4, 1024, 96);
        Tensor out = Tensor.allocate(DType.BF16, 1, 4, 1024, 96); // 0.75 MiB as BF16, 1.5 MiB as F32
        AttentionShape shape =
                AttentionShape.forward(q, k, wideV, out, null, AttentionOptions.defaults(), CAPABILITIES);
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class,
                () -> AttentionKernels.checkLimits(
                        DEVICE,
                        shape,
                        false,
                        new AttentionKernels.CallTypes(DType.F16, DType.F16, DType.F16, DType.BF16, null)));
        assertTrue(e.getMessage().startsWith("out: 393216 elements (1.5 MiB as F32 on the device)"), e.getMessage());
    }

    @Test
    void gradientsCountAsF32() {
        Tensor out = Tensor.allocate(DType.F16, 1, 4, 1024, 32);
        Tensor lse = Tensor.allocate(DType.F32, 1, 4, 1024, 1);
        BackwardInputs in = new BackwardInputs(q, k, v, out, out, lse);
        Gradients grads = new Gradients(
                Tensor.allocate(DType.F16, 1, 4, 1024, 96),
                Tensor.allocate(DType.F16, 1, 4, 1024, 96),
                Tensor.allocate(DType.F16, 1, 4, 1024, 32));
        AttentionShape shape = AttentionShape.backward(in, grads, AttentionOptions.defaults(), CAPABILITIES);
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class,
                () -> AttentionKernels.checkLimits(
                        DEVICE,
                        shape,
                        true,
                        new AttentionKernels.CallTypes(DType.F16, DType.F16, DType.F16, DType.F16, DType.F16)));
        assertTrue(e.getMessage().startsWith("dq: 393216 elements (1.5 MiB as F32 on the device)"), e.getMessage());
    }

    private AttentionShape forward(Tensor out) {
        return AttentionShape.forward(q, k, v, out, null, AttentionOptions.defaults(), CAPABILITIES);
    }

    private static AttentionKernels.CallTypes types(Tensor out) {
        return new AttentionKernels.CallTypes(DType.F16, DType.F16, DType.F16, out.dtype(), null);
    }
}
