package dev.aule.vulkan;

import java.util.Locale;

/**
 * What the chosen device offers, as queried from the driver: everything tile sizes and shader
 * variants are derived from (no vendor tables).
 *
 * @param index position in the driver's enumeration ({@code -Daule.vulkan.device=index} names it)
 * @param name the driver's device name
 * @param kind discrete GPU, integrated GPU, virtual GPU, CPU or other
 * @param apiVersion the device's Vulkan version, {@code major.minor.patch}
 * @param subgroupSize threads that execute in lock step
 * @param sharedMemoryBytes {@code maxComputeSharedMemorySize}
 * @param maxStorageBufferRange largest storage buffer a shader can bind, in bytes
 * @param maxWorkgroupInvocations {@code maxComputeWorkGroupInvocations}
 * @param maxWorkgroupSizeX {@code maxComputeWorkGroupSize[0]}
 * @param maxWorkgroupCount {@code maxComputeWorkGroupCount}, x, y, z
 * @param shaderFloat16 fp16 arithmetic in shaders
 * @param storage16Bit 16-bit storage buffer access
 * @param cooperativeMatrix whether {@code VK_KHR_cooperative_matrix} is offered
 * @param unifiedMemory whether device memory is host memory (integrated GPUs and CPU devices)
 * @param vendorId the PCI vendor id ({@code VkPhysicalDeviceProperties.vendorID}): {@link KernelTable} keys on it
 * @param coop the cooperative-matrix shapes and the features the coop kernel needs ({@link CoopSupport#NONE}
 *     without {@code VK_KHR_cooperative_matrix})
 * @param maxStageStorageBuffers {@code maxPerStageDescriptorStorageBuffers}
 * @param maxSetStorageBuffers {@code maxDescriptorSetStorageBuffers}
 * @param maxWorkgroupSize {@code maxComputeWorkGroupSize}, x, y, z
 */
record DeviceInfo(
        int index,
        String name,
        Kind kind,
        String apiVersion,
        int subgroupSize,
        long sharedMemoryBytes,
        long maxStorageBufferRange,
        int maxWorkgroupInvocations,
        int maxWorkgroupSizeX,
        int[] maxWorkgroupCount,
        boolean shaderFloat16,
        boolean storage16Bit,
        boolean cooperativeMatrix,
        boolean unifiedMemory,
        int vendorId,
        CoopSupport coop,
        int maxStageStorageBuffers,
        int maxSetStorageBuffers,
        int[] maxWorkgroupSize) {

    /**
     * A device without cooperative matrices, of no known vendor, whose descriptor limits are 64 storage buffers (more
     * than any kernel binds) and whose workgroup size limit is {@code maxWorkgroupSizeX} in every dimension: the
     * made-up devices of tests.
     */
    DeviceInfo(
            int index,
            String name,
            Kind kind,
            String apiVersion,
            int subgroupSize,
            long sharedMemoryBytes,
            long maxStorageBufferRange,
            int maxWorkgroupInvocations,
            int maxWorkgroupSizeX,
            int[] maxWorkgroupCount,
            boolean shaderFloat16,
            boolean storage16Bit,
            boolean cooperativeMatrix,
            boolean unifiedMemory) {
        this(
                index,
                name,
                kind,
                apiVersion,
                subgroupSize,
                sharedMemoryBytes,
                maxStorageBufferRange,
                maxWorkgroupInvocations,
                maxWorkgroupSizeX,
                maxWorkgroupCount,
                shaderFloat16,
                storage16Bit,
                cooperativeMatrix,
                unifiedMemory,
                0,
                CoopSupport.NONE,
                64,
                64,
                new int[] {maxWorkgroupSizeX, maxWorkgroupSizeX, maxWorkgroupSizeX});
    }

    /** Device types in the order auto-selection prefers them. */
    enum Kind {
        DISCRETE_GPU("discrete GPU"),
        INTEGRATED_GPU("integrated GPU"),
        VIRTUAL_GPU("virtual GPU"),
        CPU("CPU device"),
        OTHER("other device");

        final String label;

        Kind(String label) {
            this.label = label;
        }
    }

    boolean isCpu() {
        return kind == Kind.CPU;
    }

    /** One line for {@code aule info}. */
    String summary() {
        return String.format(
                Locale.ROOT,
                "%s (%s, Vulkan %s): subgroup %d, %d KiB shared memory, max storage buffer %d MiB, fp16 math %s,"
                        + " 16-bit storage %s, cooperative matrix %s",
                name,
                kind.label,
                apiVersion,
                subgroupSize,
                sharedMemoryBytes / 1024,
                maxStorageBufferRange >> 20,
                yesNo(shaderFloat16),
                yesNo(storage16Bit),
                cooperativeMatrix ? coop.summary() : "no");
    }

    private static String yesNo(boolean b) {
        return b ? "yes" : "no";
    }
}
