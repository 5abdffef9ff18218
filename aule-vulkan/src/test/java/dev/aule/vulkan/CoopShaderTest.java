package dev.aule.vulkan;

import dev.aule.DType;
import org.junit.jupiter.api.Test;
import org.lwjgl.system.MemoryUtil;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.IntBuffer;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every variant of forward_coop.comp that the kernel table gives the vendors' devices compiles with shaderc (no
 * device here runs cooperative matrices, so compiling is what CI can check), needs no SPIR-V capability beyond
 * the features the device enables for it, and declares the shared memory {@link CoopPlan#sharedBytes} counts.
 */
class CoopShaderTest {
    /** Shader, Float16, GroupNonUniform, VulkanMemoryModel, CooperativeMatrixKHR: what CoopQuery.enable enables. */
    private static final Set<Integer> ENABLED_CAPABILITIES = Set.of(1, 9, 61, 5345, 6022);

    private static final Pattern SHARED = Pattern.compile("shared (float16_t|float|int) (\\w+)(?:\\[([^]]+)])?;");
    private static final Pattern DEFINE = Pattern.compile("#define (\\w+) \\(([^)]*)\\)");

    @Test
    void everyVendorsVariantCompiles() {
        Map<String, Integer> f16 = new AttentionKernels.InputTypes(DType.F16, DType.F16, DType.F16).defines();
        try (ShaderCompiler compiler = new ShaderCompiler()) {
            String source = ShaderCompiler.source(Kernel.FORWARD_COOP);
            for (Object[] c : new Object[][] {
                {CoopFakes.nvidia(), "16x16x16", 32, true},
                {CoopFakes.nvidia16x8x16(), "16x8x16", 32, true},
                {CoopFakes.amd(), "16x16x16", 32, true},
                {CoopFakes.amdWave64(), "16x16x16", 64, false},
                {CoopFakes.intel(), "8x16x16", 16, true}
            }) {
                DeviceInfo device = (DeviceInfo) c[0];
                for (int hd : CoopPlan.HEAD_DIMS) {
                    CoopPlan plan = CoopPlan.of(device, hd, KernelTable.lookup(device));
                    assertNotNull(plan, device.name() + " HD " + hd + ": no plan");
                    String what = device.name() + " " + plan;
                    CoopSupport.Shape s = plan.shape();
                    assertEquals(c[1], s.m() + "x" + s.n() + "x" + s.k(), what);
                    assertEquals(c[2], plan.subgroup(), what);
                    assertEquals(c[3], plan.requireSubgroup(), what);
                    assertTrue(plan.sharedBytes() <= device.sharedMemoryBytes(), what);
                    assertTrue(
                            plan.keys() >= plan.rows() && plan.keys() % s.n() == 0 && plan.keys() % s.k() == 0, what);
                    Map<String, Integer> defines = plan.defines(f16);
                    assertEquals(plan.sharedBytes(), declaredSharedBytes(source, defines), what + ": shared memory");
                    ByteBuffer spirv = compiler.compile("forward_coop.comp", source, defines);
                    try {
                        Set<Integer> caps = capabilities(spirv);
                        assertTrue(ENABLED_CAPABILITIES.containsAll(caps), what + ": SPIR-V capabilities " + caps);
                        assertTrue(caps.contains(6022), what + ": no CooperativeMatrixKHR capability");
                    } finally {
                        MemoryUtil.memFree(spirv);
                    }
                }
            }
        }
    }

    @Test
    void noPlanWhereTheSharedMemoryIsTooSmall() {
        DeviceInfo nv = CoopFakes.nvidia();
        DeviceInfo tiny = CoopFakes.gpu("tiny", 0x10DE, 32, 8 * 1024, nv.coop());
        assertEquals(null, CoopPlan.of(tiny, 128, KernelTable.lookup(tiny)));
        String why =
                KernelTable.planRefusal(tiny, 128, new AttentionKernels.InputTypes(DType.F16, DType.F16, DType.F16));
        assertTrue(why != null && why.contains("no cooperative-matrix tile fits"), why);
    }

    /** OpCapability operands of a SPIR-V module. */
    private static Set<Integer> capabilities(ByteBuffer spirv) {
        IntBuffer words = spirv.duplicate().order(ByteOrder.LITTLE_ENDIAN).asIntBuffer();
        Set<Integer> caps = new TreeSet<>();
        for (int i = 5; i < words.limit(); ) {
            int op = words.get(i) & 0xffff;
            int count = words.get(i) >>> 16;
            if (op == 17) {
                caps.add(words.get(i + 1));
            }
            i += Math.max(1, count);
        }
        return caps;
    }

    /** Bytes of the shader's shared arrays with these defines and the shader's own parenthesised macros. */
    static long declaredSharedBytes(String source, Map<String, Integer> defines) {
        Map<String, String> macros = new HashMap<>();
        Matcher d = DEFINE.matcher(source);
        while (d.find()) {
            macros.put(d.group(1), d.group(2));
        }
        long total = 0;
        Matcher m = SHARED.matcher(source);
        while (m.find()) {
            if (m.group(2).startsWith("sEmu")) {
                continue; // the emulated variant's scratch (COOP_EMULATED), absent from real variants
            }
            long elements = m.group(3) == null ? 1 : new Expression(m.group(3), defines, macros).sum();
            total += elements * (m.group(1).equals("float16_t") ? 2 : 4);
        }
        return total;
    }

    /** A sum of products of numbers, names and parenthesised sums. */
    private static final class Expression {
        private final String text;
        private final Map<String, Integer> defines;
        private final Map<String, String> macros;
        private int at;

        Expression(String text, Map<String, Integer> defines, Map<String, String> macros) {
            this.text = text.replace(" ", "");
            this.defines = defines;
            this.macros = macros;
        }

        long sum() {
            long v = product();
            while (at < text.length() && text.charAt(at) == '+') {
                at++;
                v += product();
            }
            return v;
        }

        private long product() {
            long v = term();
            while (at < text.length() && text.charAt(at) == '*') {
                at++;
                v *= term();
            }
            return v;
        }

        private long term() {
            char c = text.charAt(at);
            if (c == '(') {
                at++;
                long v = sum();
                at++; // ')'
                return v;
            }
            int start = at;
            while (at < text.length() && (Character.isLetterOrDigit(text.charAt(at)) || text.charAt(at) == '_')) {
                at++;
            }
            String name = text.substring(start, at);
            if (Character.isDigit(name.charAt(0))) {
                return Long.parseLong(name);
            }
            if (defines.containsKey(name)) {
                return defines.get(name);
            }
            String macro = macros.get(name);
            assertNotNull(macro, "unknown name " + name + " in a shared array's size");
            return new Expression(macro, defines, macros).sum();
        }
    }
}
