package dev.aule.vulkan;

import dev.aule.DType;

import java.util.Map;
import java.util.TreeMap;

/**
 * One compiled form of a kernel: its #defines (tile sizes, head-dim bucket, storage types). Equal
 * variants share one SPIR-V module and one pipeline per device.
 *
 * @param kernel the shader
 * @param defines macro name to value, sorted so equal variants compare equal
 */
record Variant(Kernel kernel, Map<String, Integer> defines) {
    Variant {
        defines = java.util.Collections.unmodifiableMap(new TreeMap<>(defines));
    }

    static Variant of(Kernel kernel, TilePlan plan, Map<String, Integer> types) {
        Map<String, Integer> defines = new TreeMap<>(types);
        defines.put("HD", plan.hd());
        defines.put("BR", plan.rows());
        defines.put("BC", plan.keys());
        defines.put("TPR", plan.threadsPerRow());
        defines.put("WG", plan.workgroup());
        return new Variant(kernel, defines);
    }

    /** The shader's code for a storage type: 0 F32, 1 F16, 2 BF16. */
    static int typeCode(DType dtype) {
        return switch (dtype) {
            case F32 -> 0;
            case F16 -> 1;
            case BF16 -> 2;
        };
    }

    /** The shader's code for the 8-bit codes of a quantized cache: 3 INT8, 4 FP8 E4M3, 5 FP8 E5M2. */
    static int codeType(dev.aule.spi.QuantizedKv.Format format) {
        return switch (format) {
            case INT8 -> 3;
            case FP8_E4M3 -> 4;
            case FP8_E5M2 -> 5;
        };
    }

    @Override
    public String toString() {
        return kernel.resource + defines;
    }
}
