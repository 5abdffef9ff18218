package dev.aule.vulkan;

import java.util.List;

/** Device descriptions with cooperative matrices, as real drivers list them, for tests that need no such device. */
final class CoopFakes {
    private CoopFakes() {}

    static CoopSupport.Shape f16(int m, int n, int k) {
        return new CoopSupport.Shape(
                m, n, k, CoopSupport.Type.F16, CoopSupport.Type.F16, CoopSupport.Type.F32, CoopSupport.Type.F32);
    }

    /** An NVIDIA Ampere-like GPU: 48 KiB shared memory, subgroup 32, 16x16x16 and 16x8x16 (and an int8 shape). */
    static DeviceInfo nvidia() {
        return gpu(
                "fake NVIDIA",
                0x10DE,
                32,
                48 * 1024,
                new CoopSupport(
                        List.of(
                                new CoopSupport.Shape(
                                        16,
                                        8,
                                        32,
                                        CoopSupport.Type.S8,
                                        CoopSupport.Type.S8,
                                        CoopSupport.Type.S32,
                                        CoopSupport.Type.S32),
                                f16(16, 8, 16),
                                f16(16, 16, 16)),
                        true,
                        true,
                        true,
                        32,
                        32));
    }

    /** An NVIDIA GPU listing only 16x8x16. */
    static DeviceInfo nvidia16x8x16() {
        return gpu(
                "fake NVIDIA 16x8x16",
                0x10DE,
                32,
                48 * 1024,
                new CoopSupport(List.of(f16(16, 8, 16)), true, true, true, 32, 32));
    }

    /** An AMD RDNA3-like GPU: 64 KiB shared memory, wave64 by default, 32 to 64 with subgroup size control. */
    static DeviceInfo amd() {
        return gpu(
                "fake AMD", 0x1002, 64, 64 * 1024, new CoopSupport(List.of(f16(16, 16, 16)), true, true, true, 32, 64));
    }

    /** An AMD GPU without subgroup size control: the kernel runs at its default wave64. */
    static DeviceInfo amdWave64() {
        return gpu(
                "fake AMD wave64",
                0x1002,
                64,
                64 * 1024,
                new CoopSupport(List.of(f16(16, 16, 16)), true, true, false, 0, 0));
    }

    /** An Intel Arc-like GPU: 8x16x16 at subgroup 16. */
    static DeviceInfo intel() {
        return gpu(
                "fake Intel", 0x8086, 32, 64 * 1024, new CoopSupport(List.of(f16(8, 16, 16)), true, true, true, 8, 32));
    }

    static DeviceInfo gpu(String name, int vendor, int subgroup, long shared, CoopSupport coop) {
        return new DeviceInfo(
                0,
                name,
                DeviceInfo.Kind.DISCRETE_GPU,
                "1.3.0",
                subgroup,
                shared,
                1L << 31,
                1024,
                1024,
                new int[] {1 << 30, 65535, 65535},
                true,
                true,
                !coop.shapes().isEmpty(),
                false,
                vendor,
                coop,
                64,
                64,
                new int[] {1024, 1024, 64});
    }
}
