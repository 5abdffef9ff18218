package dev.aule.vulkan;

import dev.aule.DType;

import java.util.Arrays;
import java.util.Locale;
import java.util.Map;

/**
 * Every device limit a kernel launch must respect, checked in one place: per buffer before a call allocates
 * ({@link #checkStorageBuffer}, {@link #checkGrid}, from {@link AttentionKernels#checkLimits}) and per launch
 * before {@link Submission#dispatch} records it ({@link #checkLaunch}). A refusal is an {@link
 * IllegalArgumentException} naming the limit, its value on the device and what the call needs, thrown before
 * anything is submitted, so nothing of the caller's is written.
 */
final class DeviceLimits {
    private DeviceLimits() {}

    /**
     * Refuses a storage buffer of {@code elements} elements of {@code dtype}, holding argument {@code name}, over
     * {@code maxStorageBufferRange}, or with 2^31 elements or more (the shaders index with ints).
     *
     * @throws IllegalArgumentException naming the argument, its size and the limit
     */
    static void checkStorageBuffer(DeviceInfo device, String name, long elements, DType dtype) {
        long bytes = elements * dtype.byteSize();
        if (bytes > device.maxStorageBufferRange() || elements >= Integer.MAX_VALUE) {
            throw new IllegalArgumentException(name + ": " + elements + " elements (" + mib(bytes) + " as " + dtype
                    + " on the device) are over the device's maxStorageBufferRange of "
                    + mib(device.maxStorageBufferRange()) + " on " + device.name()
                    + "; split the call over batches or heads");
        }
    }

    /**
     * Refuses a grid of workgroups over {@code maxComputeWorkGroupCount} in any dimension.
     *
     * @param what what needs the grid, the start of the message ({@code "q: 100 rows, ..."})
     * @throws IllegalArgumentException naming the grid and the limit
     */
    static void checkGrid(DeviceInfo device, String what, long gx, long gy, long gz) {
        int[] max = device.maxWorkgroupCount();
        if (gx > max[0] || gy > max[1] || gz > max[2]) {
            throw new IllegalArgumentException(what + " need " + Arrays.toString(new long[] {gx, gy, gz})
                    + " workgroups, more than the device's maxComputeWorkGroupCount " + Arrays.toString(max)
                    + " on " + device.name() + "; split the call");
        }
    }

    /**
     * Refuses a launch of {@code variant} the device cannot run: its bindings over {@code
     * maxPerStageDescriptorStorageBuffers} or {@code maxDescriptorSetStorageBuffers}, its workgroup over {@code
     * maxComputeWorkGroupInvocations} or {@code maxComputeWorkGroupSize}, its shared memory over {@code
     * maxComputeSharedMemorySize}, a bound range over {@code maxStorageBufferRange} or the grid over {@code
     * maxComputeWorkGroupCount}.
     *
     * @param boundBytes bytes of each buffer bound, in binding order
     * @throws IllegalArgumentException naming the kernel, the limit and the values
     */
    static void checkLaunch(DeviceInfo device, Variant variant, long[] boundBytes, int gx, int gy, int gz) {
        Kernel kernel = variant.kernel();
        String on = " on " + device.name();
        int bindings = boundBytes.length;
        if (bindings > device.maxStageStorageBuffers()) {
            throw refusal(
                    kernel,
                    "binds " + bindings + " storage buffers, over the device's"
                            + " maxPerStageDescriptorStorageBuffers of " + device.maxStageStorageBuffers() + on);
        }
        if (bindings > device.maxSetStorageBuffers()) {
            throw refusal(
                    kernel,
                    "binds " + bindings + " storage buffers, over the device's" + " maxDescriptorSetStorageBuffers of "
                            + device.maxSetStorageBuffers() + on);
        }
        CoopPlan coop = kernel == Kernel.FORWARD_COOP ? coopPlan(variant) : null;
        TilePlan plan = coop != null ? coop.tilePlan() : plan(variant);
        int wg = plan.workgroup(); // local_size_x = WG; y and z are 1 in every shader
        if (wg > device.maxWorkgroupInvocations()) {
            throw refusal(
                    kernel,
                    "runs workgroups of " + wg + " invocations, over the device's"
                            + " maxComputeWorkGroupInvocations of " + device.maxWorkgroupInvocations() + on);
        }
        if (wg > device.maxWorkgroupSize()[0]) {
            throw refusal(
                    kernel,
                    "runs workgroups of " + wg + " x 1 x 1, over the device's maxComputeWorkGroupSize "
                            + Arrays.toString(device.maxWorkgroupSize()) + on);
        }
        long shared = coop != null ? coop.sharedBytes() : plan.sharedFloats(kernel) * Float.BYTES;
        if (shared > device.sharedMemoryBytes()) {
            throw refusal(
                    kernel,
                    "declares " + shared + " bytes of shared memory (" + plan + "), over the device's"
                            + " maxComputeSharedMemorySize of " + device.sharedMemoryBytes() + on);
        }
        for (int i = 0; i < bindings; i++) {
            if (boundBytes[i] > device.maxStorageBufferRange()) {
                throw refusal(
                        kernel,
                        "binds " + mib(boundBytes[i]) + " at binding " + i + ", over the device's"
                                + " maxStorageBufferRange of " + mib(device.maxStorageBufferRange()) + on);
            }
        }
        checkGrid(device, kernel.resource + ": a launch of " + variant, gx, gy, gz);
    }

    /** The tile plan a variant was made from (its HD, BR, BC, TPR and WG defines). */
    private static TilePlan plan(Variant variant) {
        Map<String, Integer> d = variant.defines();
        return new TilePlan(d.get("HD"), d.get("BR"), d.get("BC"), d.get("TPR"), d.get("WG"));
    }

    /**
     * The cooperative-matrix plan a {@code forward_coop.comp} variant was made from (its HD, CM, CN, CK, SG, NSG and BC
     * defines); its operand types do not change the launch's size.
     */
    private static CoopPlan coopPlan(Variant variant) {
        Map<String, Integer> d = variant.defines();
        CoopSupport.Shape shape = new CoopSupport.Shape(
                d.get("CM"),
                d.get("CN"),
                d.get("CK"),
                CoopSupport.Type.F16,
                CoopSupport.Type.F16,
                CoopSupport.Type.F32,
                CoopSupport.Type.F32);
        return new CoopPlan(
                d.get("HD"),
                shape,
                d.get("SG"),
                d.get("NSG"),
                d.get("BC"),
                d.getOrDefault(Pipelines.REQUIRED_SUBGROUP_SIZE, 0) != 0);
    }

    private static IllegalArgumentException refusal(Kernel kernel, String why) {
        return new IllegalArgumentException(kernel.resource + " " + why + "; the device cannot run this call");
    }

    private static String mib(long bytes) {
        return String.format(Locale.ROOT, "%.1f MiB", bytes / (double) (1 << 20));
    }
}
