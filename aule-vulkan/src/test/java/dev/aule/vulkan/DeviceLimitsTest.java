package dev.aule.vulkan;

import dev.aule.DType;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Each launch limit refuses what is over it, naming the limit and the values; on made-up devices. */
class DeviceLimitsTest {
    private static final long MIB = 1L << 20;

    /** A device with generous limits but the ones a test lowers. */
    private static DeviceInfo device(
            long shared, long range, int invocations, int[] size, int[] count, int stageBuffers, int setBuffers) {
        return new DeviceInfo(
                0,
                "made-up device",
                DeviceInfo.Kind.DISCRETE_GPU,
                "1.1.0",
                32,
                shared,
                range,
                invocations,
                size[0],
                count,
                false,
                false,
                false,
                false,
                0,
                CoopSupport.NONE,
                stageBuffers,
                setBuffers,
                size);
    }

    private static final int[] SIZE = {1024, 1024, 64};
    private static final int[] COUNT = {65535, 65535, 65535};
    private static final DeviceInfo ROOMY = device(48 * 1024, 1L << 30, 1024, SIZE, COUNT, 16, 64);

    private static Variant forward(DeviceInfo device) {
        return Variant.of(Kernel.FORWARD, TilePlan.forward(device, 64), Map.of());
    }

    private static long[] bound(int n, long bytes) {
        long[] b = new long[n];
        java.util.Arrays.fill(b, bytes);
        return b;
    }

    private static IllegalArgumentException refused(DeviceInfo device, Variant v, long[] bound, int gx) {
        return assertThrows(IllegalArgumentException.class, () -> DeviceLimits.checkLaunch(device, v, bound, gx, 8, 1));
    }

    private static void assertMentions(IllegalArgumentException e, String... parts) {
        for (String p : parts) {
            assertTrue(e.getMessage().contains(p), "'" + p + "' in: " + e.getMessage());
        }
    }

    /** The coop kernel's launch is sized from its own plan: its subgroups' workgroup and its shared arrays. */
    @Test
    void aCoopLaunchIsCheckedAgainstItsOwnPlan() {
        CoopPlan plan = new CoopPlan(128, CoopFakes.f16(16, 16, 16), 32, 4, 64, true);
        Variant coop = new Variant(Kernel.FORWARD_COOP, plan.defines(Map.of()));
        DeviceInfo big = device(plan.sharedBytes(), 1L << 30, 1024, SIZE, COUNT, 16, 64);
        DeviceLimits.checkLaunch(big, coop, bound(6, MIB), 4, 8, 1);
        DeviceInfo small = device(plan.sharedBytes() - 4, 1L << 30, 1024, SIZE, COUNT, 16, 64);
        assertMentions(
                refused(small, coop, bound(6, MIB), 4),
                "forward_coop.comp declares " + plan.sharedBytes() + " bytes of shared memory");
        DeviceInfo narrow = device(plan.sharedBytes(), 1L << 30, 64, SIZE, COUNT, 16, 64);
        assertMentions(refused(narrow, coop, bound(6, MIB), 4), "runs workgroups of 128 invocations");
    }

    @Test
    void aLaunchWithinEveryLimitIsAccepted() {
        DeviceLimits.checkLaunch(ROOMY, forward(ROOMY), bound(6, MIB), 100, 8, 1);
        TilePlan backward = TilePlan.backward(ROOMY, 64);
        DeviceLimits.checkLaunch(ROOMY, Variant.of(Kernel.BACKWARD_KV, backward, Map.of()), bound(9, MIB), 4, 8, 2);
    }

    @Test
    void bindingsOverThePerStageLimitAreRefused() {
        DeviceInfo eight = device(48 * 1024, 1L << 30, 1024, SIZE, COUNT, 8, 64);
        Variant kv = Variant.of(Kernel.BACKWARD_KV, TilePlan.backward(eight, 64), Map.of());
        assertMentions(
                refused(eight, kv, bound(9, MIB), 1),
                "backward_kv.comp binds 9 storage buffers",
                "maxPerStageDescriptorStorageBuffers of 8");
        DeviceLimits.checkLaunch(eight, forward(eight), bound(6, MIB), 1, 1, 1); // 6 bindings fit
        // The masked backward binds its masks after its own buffers: 12, over a device's 11.
        DeviceInfo eleven = device(48 * 1024, 1L << 30, 1024, SIZE, COUNT, 11, 64);
        Variant masked = Variant.of(Kernel.BACKWARD_KV_MASKED, TilePlan.backward(eleven, 64), Map.of());
        assertMentions(
                refused(eleven, masked, bound(12, MIB), 1),
                "backward_kv.comp binds 12 storage buffers",
                "maxPerStageDescriptorStorageBuffers of 11");
        // ... which the masked backward's host side refuses first, before evaluating a mask.
        dev.aule.AttentionOptions options = dev.aule.AttentionOptions.builder()
                .maskMod((batch, head, row, key) -> {
                    throw new AssertionError("evaluated although refused");
                })
                .build();
        dev.aule.spi.AttentionShape shape = new dev.aule.spi.AttentionShape(1, 1, 1, 8, 8, 64, 64);
        assertMentions(
                assertThrows(IllegalArgumentException.class, () -> DeviceMasks.forBackward(eleven, shape, options)),
                "options: the masked backward binds 12 storage buffers, over the 11");
        dev.aule.AttentionOptions causal = dev.aule.AttentionOptions.builder()
                .maskMod(dev.aule.mask.MaskMod.causal())
                .build();
        assertTrue(DeviceMasks.forBackward(ROOMY, shape, causal).bits != null, "16 bindings fit");
    }

    @Test
    void bindingsOverThePerSetLimitAreRefused() {
        DeviceInfo five = device(48 * 1024, 1L << 30, 1024, SIZE, COUNT, 16, 5);
        assertMentions(refused(five, forward(five), bound(6, MIB), 1), "maxDescriptorSetStorageBuffers of 5");
    }

    @Test
    void aWorkgroupOverTheInvocationOrSizeLimitIsRefused() {
        Variant wg128 = forward(ROOMY);
        DeviceInfo fewInvocations = device(48 * 1024, 1L << 30, 64, SIZE, COUNT, 16, 64);
        assertMentions(
                refused(fewInvocations, wg128, bound(6, MIB), 1),
                "workgroups of 128 invocations",
                "maxComputeWorkGroupInvocations of 64");
        DeviceInfo narrow = device(48 * 1024, 1L << 30, 1024, new int[] {64, 1024, 64}, COUNT, 16, 64);
        assertMentions(
                refused(narrow, wg128, bound(6, MIB), 1), "128 x 1 x 1", "maxComputeWorkGroupSize [64, 1024, 64]");
    }

    @Test
    void sharedMemoryOverTheLimitIsRefused() {
        Variant planned = forward(ROOMY); // tiles for 48 KiB
        DeviceInfo small = device(16 * 1024, 1L << 30, 1024, SIZE, COUNT, 16, 64);
        long needs = TilePlan.forward(ROOMY, 64).sharedFloats(Kernel.FORWARD) * Float.BYTES;
        assertMentions(
                refused(small, planned, bound(6, MIB), 1),
                "declares " + needs + " bytes of shared memory",
                "maxComputeSharedMemorySize of 16384");
    }

    @Test
    void aBoundRangeOverTheLimitIsRefused() {
        DeviceInfo oneMib = device(48 * 1024, MIB, 1024, SIZE, COUNT, 16, 64);
        long[] bound = bound(6, 4096);
        bound[3] = MIB + 4;
        assertMentions(refused(oneMib, forward(oneMib), bound, 1), "at binding 3", "maxStorageBufferRange of 1.0 MiB");
    }

    @Test
    void aGridOverTheCountLimitIsRefused() {
        DeviceInfo few = device(48 * 1024, 1L << 30, 1024, SIZE, new int[] {100, 65535, 65535}, 16, 64);
        assertMentions(
                refused(few, forward(few), bound(6, MIB), 101), "[101, 8, 1] workgroups", "maxComputeWorkGroupCount");
        DeviceLimits.checkLaunch(few, forward(few), bound(6, MIB), 100, 8, 1);
    }

    @Test
    void aStorageBufferOverTheRangeOrTheIndexLimitIsRefused() {
        DeviceInfo oneMib = device(48 * 1024, MIB, 1024, SIZE, COUNT, 16, 64);
        DeviceLimits.checkStorageBuffer(oneMib, "q", MIB / 2, DType.F16);
        assertMentions(
                assertThrows(
                        IllegalArgumentException.class,
                        () -> DeviceLimits.checkStorageBuffer(oneMib, "q", MIB / 2 + 1, DType.F16)),
                "q: 524289 elements",
                "maxStorageBufferRange of 1.0 MiB");
        DeviceInfo huge = device(48 * 1024, 1L << 40, 1024, SIZE, COUNT, 16, 64);
        assertThrows(
                IllegalArgumentException.class,
                () -> DeviceLimits.checkStorageBuffer(huge, "k", Integer.MAX_VALUE, DType.F16));
    }
}
