package dev.aule.vulkan;

import java.util.List;

/**
 * Which forward kernel a device runs for calls that are not decode-shaped, and with which cooperative-matrix
 * shape and subgroup size, per vendor and capability, with the reason for each row: the one place these
 * per-device decisions live. {@link AttentionKernels#chooseForward} asks {@link #lookup} after its decode test;
 * tile sizes themselves still come from the device's limits ({@link TilePlan}, {@link CoopPlan}).
 *
 * <p>The coop kernel runs only on a device whose row says {@link Choice#COOP}, which lists what it needs
 * ({@link CoopSupport#missingFeature()}), where a {@link CoopPlan} fits, and once its first-use {@link CoopCheck}
 * passed; otherwise the row's fallback (the register-blocked scalar kernel) runs.
 */
final class KernelTable {
    private KernelTable() {}

    /** PCI vendor ids ({@code VkPhysicalDeviceProperties.vendorID}). */
    enum Vendor {
        NVIDIA(0x10DE),
        AMD(0x1002),
        INTEL(0x8086),
        APPLE(0x106B),
        OTHER(-1);

        final int id;

        Vendor(int id) {
            this.id = id;
        }

        static Vendor of(int id) {
            for (Vendor v : values()) {
                if (v.id == id) {
                    return v;
                }
            }
            return OTHER;
        }
    }

    /** The forward kernels a row can name. */
    enum Choice {
        COOP,
        BLOCKED
    }

    /**
     * One row of the table.
     *
     * @param vendor whose devices it covers ({@link Vendor#OTHER}: any vendor)
     * @param cpu whether it covers CPU devices (lavapipe, SwiftShader) rather than GPUs
     * @param coop whether it covers devices with what the coop kernel needs
     * @param kernel the forward kernel for calls that are not decode-shaped
     * @param shapes M x N x K shapes to prefer, in order, among the device's (any usable one after them)
     * @param subgroup the subgroup size to require of the coop pipeline (0: the device's own)
     * @param reason why
     */
    record Entry(
            Vendor vendor, boolean cpu, boolean coop, Choice kernel, List<int[]> shapes, int subgroup, String reason) {}

    /** The rows, most specific first; the first that covers a device is its row. */
    static final List<Entry> ENTRIES = List.of(
            new Entry(
                    Vendor.OTHER,
                    true,
                    false,
                    Choice.BLOCKED,
                    List.of(),
                    0,
                    "a CPU device: no matrix units; the register-blocked kernel (its subgroup layout with 4 to 16 lanes)"),
            new Entry(
                    Vendor.NVIDIA,
                    false,
                    true,
                    Choice.COOP,
                    List.of(new int[] {16, 16, 16}, new int[] {16, 8, 16}),
                    32,
                    "NVIDIA tensor cores (Turing and later) list 16x16x16 and 16x8x16 F16 x F16 + F32 at subgroup 32;"
                            + " 16x16x16 halves the loads per product"),
            new Entry(
                    Vendor.AMD,
                    false,
                    true,
                    Choice.COOP,
                    List.of(new int[] {16, 16, 16}),
                    32,
                    "AMD RDNA3 WMMA lists 16x16x16 F16 x F16 + F32; it runs in wave32, required through subgroup"
                            + " size control"),
            new Entry(
                    Vendor.INTEL,
                    false,
                    true,
                    Choice.COOP,
                    List.of(new int[] {8, 16, 16}),
                    16,
                    "Intel XMX (Arc, Xe2) lists 8x16x16 F16 x F16 + F32 at subgroup 16"),
            new Entry(
                    Vendor.APPLE,
                    false,
                    false,
                    Choice.BLOCKED,
                    List.of(),
                    0,
                    "MoltenVK exposes no VK_KHR_cooperative_matrix (Metal's simdgroup matrices are not reachable"
                            + " through Vulkan): the register-blocked kernel"),
            new Entry(
                    Vendor.OTHER,
                    false,
                    true,
                    Choice.COOP,
                    List.of(),
                    0,
                    "another vendor with cooperative matrices: the first usable listed shape, the device's subgroup"
                            + " size"),
            new Entry(
                    Vendor.OTHER,
                    false,
                    false,
                    Choice.BLOCKED,
                    List.of(),
                    0,
                    "a GPU without (usable) cooperative matrices: the register-blocked scalar F32 kernel"));

    /** The row covering {@code device}. */
    static Entry lookup(DeviceInfo device) {
        Vendor vendor = Vendor.of(device.vendorId());
        boolean coop = device.coop().missingFeature() == null;
        for (Entry e : ENTRIES) {
            boolean vendorMatches = e.vendor() == Vendor.OTHER || e.vendor() == vendor;
            boolean kindMatches = e.cpu() ? device.isCpu() : !device.isCpu();
            // a coop row needs a coop device; a row without coop covers both (Apple's, the last one)
            if (vendorMatches && kindMatches && (!e.coop() || coop)) {
                return e;
            }
        }
        throw new IllegalStateException("the kernel table's last rows cover every device");
    }

    /**
     * Null when the coop kernel can run a call of head-dim bucket {@code bucket} with these inputs on {@code
     * device}, whose check gave {@code status}; otherwise why not, in words.
     */
    static String coopRefusal(
            DeviceInfo device, int bucket, AttentionKernels.InputTypes types, CoopCheck.Result status) {
        String missing = device.coop().missingFeature();
        if (missing != null) {
            return device.name() + " has " + missing;
        }
        if (!status.enabled()) {
            return "disabled on " + device.name() + ": " + status.reason();
        }
        return planRefusal(device, bucket, types);
    }

    /** Null when a plan fits a call of head-dim bucket {@code bucket} with these input types; else why not. */
    static String planRefusal(DeviceInfo device, int bucket, AttentionKernels.InputTypes types) {
        if (types != null
                && (types.q() != dev.aule.DType.F16
                        || types.k() != dev.aule.DType.F16
                        || types.v() != dev.aule.DType.F16)) {
            return "it takes F16 q, k and v (got " + types.q() + ", " + types.k() + ", " + types.v() + ")";
        }
        int hd = CoopPlan.headDim(bucket);
        if (hd == 0) {
            return "head dim bucket " + bucket + " (it is compiled for 64 and 128)";
        }
        if (CoopPlan.of(device, hd, lookup(device)) == null) {
            return "no cooperative-matrix tile fits " + device.name() + " at head dim " + hd + " (shapes "
                    + device.coop().usable() + ", " + device.sharedMemoryBytes() / 1024 + " KiB shared memory)";
        }
        return null;
    }
}
