package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Gradients;
import dev.aule.Tensor;
import dev.aule.spi.Accuracy;
import dev.aule.spi.AttentionBackend;
import dev.aule.testing.BackwardCases;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link VulkanTensor}: data stays on the device across calls, and results match the reference. */
class DeviceTensorTest {
    private final VulkanBackend vulkan = VulkanTestSupport.backend();
    private final AttentionBackend reference = Backends.get("reference");

    @Test
    void uploadAndDownloadRoundTripEveryDtype() {
        SplittableRandom rnd = new SplittableRandom(1);
        for (DType dtype : DType.values()) {
            Tensor host = Tensors.random(rnd, dtype, 2, 3, 5, 7); // odd element count: 16-bit packing edge
            try (VulkanTensor t = vulkan.upload(host)) {
                assertEquals(dtype, t.dtype());
                assertArrayEquals(host.toFloatArray(), t.toHost().toFloatArray(), dtype.toString());
            }
        }
    }

    /** Several calls reuse the resident K and V; F32 and 16-bit outputs (rounded on the device). */
    @Test
    void forwardOnResidentTensorsMatchesTheReference() {
        SplittableRandom rnd = new SplittableRandom(2);
        AttentionOptions causal =
                AttentionOptions.builder().causal(true).softcap(20f).build();
        Tensor k = Tensors.random(rnd, DType.BF16, 1, 2, 50, 64);
        Tensor v = Tensors.random(rnd, DType.BF16, 1, 2, 50, 48);
        try (VulkanTensor kd = vulkan.upload(k);
                VulkanTensor vd = vulkan.upload(v)) {
            for (DType outType : DType.values()) {
                Tensor q = Tensors.random(rnd, DType.F16, 1, 8, 9, 64);
                Tensor ref = Tensor.allocate(DType.F32, 1, 8, 9, 48);
                Tensor refLse = Tensor.allocate(DType.F32, 1, 8, 9, 1);
                reference.forward(q, k, v, ref, refLse, causal);
                try (VulkanTensor qd = vulkan.upload(q);
                        VulkanTensor out = vulkan.allocate(outType, 1, 8, 9, 48);
                        VulkanTensor lse = vulkan.allocate(DType.F32, 1, 8, 9, 1)) {
                    vulkan.forward(qd, kd, vd, out, lse, causal);
                    double limit = outType == DType.F32 ? 1e-5 : 1e-2;
                    double error = Accuracy.relativeError(out.toHost(), ref);
                    assertTrue(error < limit, outType + " out error " + error);
                    assertTrue(Accuracy.relativeError(lse.toHost(), refLse) < 1e-5, "lse");
                }
            }
        }
    }

    @Test
    void backwardOnResidentTensorsMatchesTheReference() {
        SplittableRandom rnd = new SplittableRandom(3);
        BackwardCases.Case c = new BackwardCases.Case(
                DType.F32,
                1,
                4,
                2,
                30,
                41,
                32,
                48,
                AttentionOptions.builder().causal(true).window(9, -1).build());
        BackwardCases.Inputs in = BackwardCases.inputs(rnd, c, reference);
        Gradients expected = BackwardCases.backward(reference, in, c.options(), DType.F32);
        for (DType gradType : new DType[] {DType.F32, DType.BF16}) {
            try (VulkanTensor q = vulkan.upload(in.q());
                    VulkanTensor k = vulkan.upload(in.k());
                    VulkanTensor v = vulkan.upload(in.v());
                    VulkanTensor out = vulkan.upload(in.out());
                    VulkanTensor dOut = vulkan.upload(in.dOut());
                    VulkanTensor lse = vulkan.upload(in.lse());
                    VulkanTensor dq = vulkan.allocate(gradType, 1, 4, 30, 32);
                    VulkanTensor dk = vulkan.allocate(gradType, 1, 2, 41, 32);
                    VulkanTensor dv = vulkan.allocate(gradType, 1, 2, 41, 48)) {
                vulkan.backward(q, k, v, out, dOut, lse, dq, dk, dv, c.options());
                Gradients actual = new Gradients(dq.toHost(), dk.toHost(), dv.toHost());
                double error = BackwardCases.error(actual, expected);
                assertTrue(error < (gradType == DType.F32 ? 1e-4 : 2e-2), gradType + " gradient error " + error);
            }
        }
    }

    @Test
    void closedTensorsAndMismatchedShapesAreRejected() {
        VulkanTensor t = small();
        assertRejected("src: shape [1, 1, 4, 9]", () -> t.upload(Tensor.allocate(DType.F32, 1, 1, 4, 9)));
        t.close();
        t.close(); // idempotent
        assertThrows(IllegalStateException.class, t::toHost);
        try (VulkanTensor k = small();
                VulkanTensor out = small()) {
            IllegalStateException e = assertThrows(
                    IllegalStateException.class, () -> vulkan.forward(t, k, k, out, null, AttentionOptions.defaults()));
            assertTrue(e.getMessage().startsWith("q: VulkanTensor[F32 [1, 1, 4, 8]] was closed"), e.getMessage());
        }
    }

    /** Outputs may not alias inputs: the shared validation sees device tensors as distinct memory ranges. */
    @Test
    void anOutputAliasingAnInputIsRejected() {
        try (VulkanTensor q = small();
                VulkanTensor k = small()) {
            assertRejected(
                    "out: memory overlaps q", () -> vulkan.forward(q, k, k, q, null, AttentionOptions.defaults()));
        }
    }

    @Test
    void aTensorOverTheStorageBufferRangeIsRejectedBeforeAllocating() {
        long range = vulkan.device().info().maxStorageBufferRange();
        int seq = (int) Math.min(Integer.MAX_VALUE, range / (4L * 256 * 8) + 1);
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> vulkan.allocate(DType.F32, 1, 8, seq, 256));
        assertTrue(e.getMessage().contains("maxStorageBufferRange"), e.getMessage());
    }

    /** A zeroed F32 device tensor of one head, four rows of eight. */
    private VulkanTensor small() {
        return vulkan.allocate(DType.F32, 1, 1, 4, 8);
    }

    private static void assertRejected(String messageStart, Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().startsWith(messageStart), e.getMessage());
    }
}
