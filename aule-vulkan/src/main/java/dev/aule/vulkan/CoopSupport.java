package dev.aule.vulkan;

import java.util.List;
import java.util.Locale;
import java.util.stream.Collectors;

/**
 * What a device offers for cooperative matrices ({@code VK_KHR_cooperative_matrix}), as queried at device creation,
 * and the features the coop kernel needs beside it. Every field is false or empty on a device without the extension.
 *
 * @param shapes the subgroup-scope matrix shapes and types the driver lists
 *     ({@code vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR}); only these are enabled on the device
 * @param float16 the {@code shaderFloat16} feature (F16 operands in shared memory)
 * @param memoryModel the {@code vulkanMemoryModel} feature (shaderc emits the Vulkan memory model for coopmat code)
 * @param subgroupSizeControl {@code VK_EXT_subgroup_size_control} with its feature, so a pipeline can require
 *     a subgroup size
 * @param minSubgroupSize the smallest size a pipeline may require (0 without subgroup size control)
 * @param maxSubgroupSize the largest size a pipeline may require (0 without subgroup size control)
 */
record CoopSupport(
        List<Shape> shapes,
        boolean float16,
        boolean memoryModel,
        boolean subgroupSizeControl,
        int minSubgroupSize,
        int maxSubgroupSize) {
    /** A device without cooperative matrices. */
    static final CoopSupport NONE = new CoopSupport(List.of(), false, false, false, 0, 0);

    CoopSupport {
        shapes = List.copyOf(shapes);
    }

    /** Component types of a coopmat, as {@code VkComponentTypeKHR} numbers them (those aule names). */
    enum Type {
        F16(0),
        F32(1),
        F64(2),
        S8(3),
        S16(4),
        S32(5),
        S64(6),
        U8(7),
        U16(8),
        U32(9),
        U64(10),
        OTHER(-1);

        final int code;

        Type(int code) {
            this.code = code;
        }

        static Type of(int code) {
            for (Type t : values()) {
                if (t.code == code) {
                    return t;
                }
            }
            return OTHER;
        }
    }

    /**
     * One listed shape: {@code C (MxN) = A (MxK) * B (KxN) + C}, subgroup scope.
     *
     * @param m rows of A and C
     * @param n columns of B and C
     * @param k columns of A, rows of B
     */
    record Shape(int m, int n, int k, Type a, Type b, Type c, Type result) {
        /** Whether the coop kernel can use it: F16 operands, F32 accumulator and result. */
        boolean f16F32() {
            return a == Type.F16 && b == Type.F16 && c == Type.F32 && result == Type.F32;
        }

        @Override
        public String toString() {
            return m + "x" + n + "x" + k + " " + a + "*" + b + "+" + c + (result == c ? "" : "->" + result);
        }
    }

    /** The listed shapes the coop kernel can use (F16 x F16 + F32), in the driver's order. */
    List<Shape> usable() {
        return shapes.stream().filter(Shape::f16F32).toList();
    }

    /** Null when the device has everything the coop kernel needs but a shape; otherwise what it lacks. */
    String missingFeature() {
        if (shapes.isEmpty()) {
            return "no VK_KHR_cooperative_matrix (or no subgroup-scope shape listed)";
        }
        if (usable().isEmpty()) {
            return "no F16 x F16 + F32 shape among the listed " + this.shapes;
        }
        if (!float16) {
            return "no shaderFloat16 feature";
        }
        if (!memoryModel) {
            return "no vulkanMemoryModel feature";
        }
        return null;
    }

    /** For {@code aule info}. */
    String summary() {
        if (shapes.isEmpty()) {
            return "no";
        }
        return shapes.stream().map(Shape::toString).collect(Collectors.joining(", ", "[", "]"))
                + (subgroupSizeControl
                        ? String.format(Locale.ROOT, ", subgroup sizes %d-%d", minSubgroupSize, maxSubgroupSize)
                        : ", no subgroup size control");
    }
}
