package dev.aule.vulkan;

import dev.aule.DType;
import dev.aule.reference.ReferenceBackend;
import dev.aule.spi.AttentionShape;
import org.junit.jupiter.api.Test;

import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The first-use check's logic with fake runners (no device here runs cooperative matrices), and how its result,
 * the kernel table and the forced kernel decide the forward kernel.
 */
class CoopCheckTest {
    private static final AttentionKernels.InputTypes F16 =
            new AttentionKernels.InputTypes(DType.F16, DType.F16, DType.F16);
    private static final ReferenceBackend REFERENCE = new ReferenceBackend();

    @Test
    void aRunnerThatMatchesTheReferencePasses() {
        AtomicInteger calls = new AtomicInteger();
        CoopCheck.Result r = CoopCheck.run(CoopFakes.nvidia(), null, (q, k, v, out, lse, o) -> {
            calls.incrementAndGet();
            assertEquals(DType.F16, q.dtype(), "the check feeds F16 inputs");
            REFERENCE.forward(q, k, v, out, lse, o);
        });
        assertTrue(r.enabled(), r.reason());
        assertEquals(CoopCheck.CASES.size(), calls.get());
        assertTrue(r.summary().startsWith("cooperative-matrix forward on ("), r.summary());
    }

    @Test
    void aSmallOutputErrorFailsNamingTheCase() {
        // 0.05 is about 20 times what F16 inputs cost on these cases: a wrong kernel, not rounding.
        CoopCheck.Result r = CoopCheck.run(CoopFakes.nvidia(), null, (q, k, v, out, lse, o) -> {
            REFERENCE.forward(q, k, v, out, lse, o);
            if (q.headDim() == 128) {
                out.set(0, 1, 3, 7, out.get(0, 1, 3, 7) + 0.05f);
            }
        });
        assertFalse(r.enabled());
        assertTrue(r.reason().contains("failed on case 'HD 128") && r.reason().contains("out["), r.reason());
    }

    @Test
    void anErrorWithinTheToleranceOfF16Passes() {
        CoopCheck.Result r = CoopCheck.run(CoopFakes.nvidia(), null, (q, k, v, out, lse, o) -> {
            REFERENCE.forward(q, k, v, out, lse, o);
            out.set(0, 0, 0, 0, out.get(0, 0, 0, 0) + 0.002f);
        });
        assertTrue(r.enabled(), r.reason());
    }

    @Test
    void aWrongLseOrANanFails() {
        CoopCheck.Result lse = CoopCheck.run(CoopFakes.nvidia(), null, (q, k, v, out, l, o) -> {
            REFERENCE.forward(q, k, v, out, l, o);
            l.set(0, 0, 4, 0, l.get(0, 0, 4, 0) + 0.5f);
        });
        assertFalse(lse.enabled());
        assertTrue(lse.reason().contains("lse["), lse.reason());
        CoopCheck.Result nan = CoopCheck.run(CoopFakes.nvidia(), null, (q, k, v, out, l, o) -> {
            REFERENCE.forward(q, k, v, out, l, o);
            out.set(0, 0, q.seqLen() - 1, 0, Float.NaN);
        });
        assertFalse(nan.enabled());
        assertTrue(nan.reason().contains("NaN"), nan.reason());
    }

    @Test
    void aRunnerThatWritesNothingFails() {
        CoopCheck.Result r = CoopCheck.run(CoopFakes.nvidia(), null, (q, k, v, out, lse, o) -> {});
        assertFalse(r.enabled());
        assertTrue(r.reason().contains("failed on case"), r.reason());
    }

    @Test
    void aRunnerThatThrowsDisablesTheKernelWithItsMessage() {
        CoopCheck.Result r = CoopCheck.run(CoopFakes.nvidia(), null, (q, k, v, out, lse, o) -> {
            throw new VulkanException("vkCreateComputePipelines forward_coop.comp failed: VK_ERROR_UNKNOWN");
        });
        assertFalse(r.enabled());
        assertTrue(r.reason().contains("threw") && r.reason().contains("VK_ERROR_UNKNOWN"), r.reason());
    }

    @Test
    void aDeviceWithoutWhatTheKernelNeedsIsRefusedWithoutRunning() {
        AtomicInteger calls = new AtomicInteger();
        CoopCheck.Runner counting = (q, k, v, out, lse, o) -> calls.incrementAndGet();
        DeviceInfo plain = CoopFakes.gpu("plain", 0x10DE, 32, 48 * 1024, CoopSupport.NONE);
        CoopCheck.Result none = CoopCheck.run(plain, null, counting);
        assertFalse(none.enabled());
        assertTrue(none.reason().contains("no VK_KHR_cooperative_matrix"), none.reason());

        CoopSupport nv = CoopFakes.nvidia().coop();
        DeviceInfo int8Only = CoopFakes.gpu(
                "int8 only",
                0x10DE,
                32,
                48 * 1024,
                new CoopSupport(java.util.List.of(nv.shapes().getFirst()), true, true, true, 32, 32));
        assertTrue(CoopCheck.run(int8Only, null, counting).reason().contains("no F16 x F16 + F32 shape"));
        DeviceInfo noF16 =
                CoopFakes.gpu("no f16", 0x10DE, 32, 48 * 1024, new CoopSupport(nv.shapes(), false, true, true, 32, 32));
        assertTrue(CoopCheck.run(noF16, null, counting).reason().contains("shaderFloat16"));
        DeviceInfo noModel = CoopFakes.gpu(
                "no memory model", 0x10DE, 32, 48 * 1024, new CoopSupport(nv.shapes(), true, false, true, 32, 32));
        assertTrue(CoopCheck.run(noModel, null, counting).reason().contains("vulkanMemoryModel"));
        CoopCheck.Result failedOpen = CoopCheck.run(CoopFakes.nvidia(), "creating the device failed (x)", counting);
        assertEquals("creating the device failed (x)", failedOpen.reason());
        assertEquals(0, calls.get());
    }

    @Test
    void theTableGivesEachVendorItsRow() {
        assertEquals(
                KernelTable.Vendor.NVIDIA,
                KernelTable.lookup(CoopFakes.nvidia()).vendor());
        assertEquals(
                KernelTable.Choice.COOP, KernelTable.lookup(CoopFakes.amd()).kernel());
        assertEquals(
                KernelTable.Vendor.INTEL, KernelTable.lookup(CoopFakes.intel()).vendor());
        DeviceInfo apple = CoopFakes.gpu("Apple M2", 0x106B, 32, 32 * 1024, CoopSupport.NONE);
        assertEquals(KernelTable.Vendor.APPLE, KernelTable.lookup(apple).vendor());
        assertEquals(KernelTable.Choice.BLOCKED, KernelTable.lookup(apple).kernel());
        DeviceInfo nvNoCoop = CoopFakes.gpu("old NVIDIA", 0x10DE, 32, 48 * 1024, CoopSupport.NONE);
        assertEquals(KernelTable.Choice.BLOCKED, KernelTable.lookup(nvNoCoop).kernel());
        DeviceInfo other =
                CoopFakes.gpu("other", 0x5143, 64, 32 * 1024, CoopFakes.nvidia().coop());
        assertEquals(KernelTable.Choice.COOP, KernelTable.lookup(other).kernel());
        assertEquals(KernelTable.Vendor.OTHER, KernelTable.lookup(other).vendor());
        for (KernelTable.Entry e : KernelTable.ENTRIES) {
            assertFalse(e.reason().isBlank());
        }
    }

    @Test
    void theChooserRunsTheCoopKernelOnlyOnceTheCheckPassed() {
        DeviceInfo nv = CoopFakes.nvidia();
        AttentionShape prefill = new AttentionShape(1, 8, 8, 512, 512, 128, 128);
        CoopCheck.Result passed = new CoopCheck.Result(true, "passed");
        CoopCheck.Result failed = new CoopCheck.Result(false, "its first-use check failed on case 'x'");
        assertEquals(
                Kernel.FORWARD_COOP,
                AttentionKernels.chooseForward(nv, prefill, F16, passed, "auto").kernel());
        assertEquals(
                Kernel.FORWARD_BLOCKED,
                AttentionKernels.chooseForward(nv, prefill, F16, failed, "auto").kernel());
        // F32 or BF16 inputs, a head dim of 256, or a decode-shaped call keep the other kernels.
        AttentionKernels.InputTypes f32 = new AttentionKernels.InputTypes(DType.F32, DType.F32, DType.F32);
        assertEquals(
                Kernel.FORWARD_BLOCKED,
                AttentionKernels.chooseForward(nv, prefill, f32, passed, "auto").kernel());
        AttentionShape wide = new AttentionShape(1, 8, 8, 512, 512, 256, 256);
        assertFalse(
                AttentionKernels.chooseForward(nv, wide, F16, passed, "auto").kernel() == Kernel.FORWARD_COOP);
        AttentionShape decode = new AttentionShape(1, 8, 8, 1, 4096, 128, 128);
        assertEquals(
                Kernel.DECODE,
                AttentionKernels.chooseForward(nv, decode, F16, passed, "auto").kernel());
        // forced: runs where it can, refuses with the check's reason where it was disabled
        assertEquals(
                Kernel.FORWARD_COOP,
                AttentionKernels.chooseForward(nv, decode, F16, passed, "coop").kernel());
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class, () -> AttentionKernels.chooseForward(nv, prefill, F16, failed, "coop"));
        assertTrue(
                e.getMessage().contains("-Daule.vulkan.kernel=coop")
                        && e.getMessage().contains("case 'x'"),
                e.getMessage());
        IllegalArgumentException types = assertThrows(
                IllegalArgumentException.class, () -> AttentionKernels.chooseForward(nv, prefill, f32, passed, "coop"));
        assertTrue(types.getMessage().contains("F16 q, k and v"), types.getMessage());
        // more query tiles than the device's grid allows: not the coop kernel
        DeviceInfo smallGrid = new DeviceInfo(
                0,
                "small grid",
                DeviceInfo.Kind.DISCRETE_GPU,
                "1.3.0",
                32,
                48 * 1024,
                1L << 31,
                1024,
                1024,
                new int[] {8, 65535, 65535},
                true,
                true,
                true,
                false,
                0x10DE,
                nv.coop(),
                64,
                64,
                new int[] {1024, 1024, 64});
        IllegalArgumentException grid = assertThrows(
                IllegalArgumentException.class,
                () -> AttentionKernels.chooseForward(smallGrid, prefill, F16, passed, "coop"));
        assertTrue(grid.getMessage().contains("maxComputeWorkGroupCount"), grid.getMessage());
        // the old two-argument chooser never picks it (it knows neither types nor status)
        assertEquals(
                Kernel.FORWARD_BLOCKED,
                AttentionKernels.chooseForward(nv, prefill).kernel());
    }

    @Test
    void compareAcceptsEqualInfinitiesOnly() {
        float inf = Float.NEGATIVE_INFINITY;
        assertEquals(null, CoopCheck.compare("lse", new float[] {inf, 1f}, new float[] {inf, 1.005f}));
        assertTrue(CoopCheck.compare("lse", new float[] {0f}, new float[] {inf}) != null);
        assertTrue(CoopCheck.compare("out", new float[] {Float.NaN}, new float[] {0f}) != null);
    }
}
