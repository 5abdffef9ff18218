package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.spi.AttentionShape;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * What the Java side copies from the GLSL sources, read from the shaders themselves (as
 * {@link ShaderCompiler#source} hands them to shaderc), so changing one side without the other fails
 * the build: the push-constant block against {@link Params}, each kernel's bindings against
 * {@link Kernel}, the storage type codes against {@link Variant#typeCode}, and the shared arrays against
 * {@link TilePlan#sharedFloats}. Needs no device.
 */
class ShaderConstantsTest {
    private static final Pattern PUSH_BLOCK =
            Pattern.compile("layout\\(push_constant\\) uniform Params \\{(.*?)}", Pattern.DOTALL);
    private static final Pattern MEMBER = Pattern.compile("\\b(int|float) (\\w+);");
    private static final Pattern BINDING =
            Pattern.compile("layout\\(std430, binding = (\\d+)\\) (?:readonly |writeonly )?buffer (\\w+)");
    private static final Pattern TYPE_CODE = Pattern.compile("\\(T\\) == (\\d) \\? LOAD_(\\w+)\\(");
    private static final Pattern SHARED = Pattern.compile("shared float (\\w+)\\[([^]]+)];");

    @Test
    void thePushConstantBlockIsParamsWordForWord() {
        List<String[]> members = new ArrayList<>(); // {type, name} in the block's order
        Matcher block = PUSH_BLOCK.matcher(ShaderCompiler.source(Kernel.FORWARD).replaceAll("//[^\n]*", ""));
        assertTrue(block.find(), "no push_constant block in common.glsl");
        Matcher member = MEMBER.matcher(block.group(1));
        while (member.find()) {
            members.add(new String[] {member.group(1), member.group(2)});
        }
        assertEquals(Params.INTS, members.size(), "push constants in common.glsl vs Params.INTS");
        assertEquals(Params.INTS * Integer.BYTES, Pipelines.PUSH_BYTES);

        // Every word distinct, so a swapped pair shows.
        AttentionShape shape = new AttentionShape(2, 6, 3, 5, 7, 16, 8);
        AttentionOptions options = AttentionOptions.builder()
                .causal(true)
                .window(4, -1)
                .scale(0.25f)
                .softcap(3f)
                .alibiSlopes(new float[] {0.5f, 0.25f, 0.125f, 0.0625f, 0.03f, 0.02f})
                .build();
        int[] words = Params.of(shape, options, true)
                .withCount(99)
                .withTileBase(3)
                .withPaging(13, 17)
                .withBlocks(19)
                .words();
        Map<String, Integer> byName = new LinkedHashMap<>();
        byName.put("B", 2);
        byName.put("Hq", 6);
        byName.put("Hkv", 3);
        byName.put("Sq", 5);
        byName.put("Sk", 7);
        byName.put("D", 16);
        byName.put("Dv", 8);
        byName.put("scale", Float.floatToRawIntBits(0.25f));
        byName.put("softcap", Float.floatToRawIntBits(3f));
        byName.put("left", 4);
        byName.put("right", 0); // causal
        byName.put("alibi", 1);
        byName.put("flags", 1); // bit 0: write lse
        byName.put("rowCount", 99);
        byName.put("tileBase", 3);
        byName.put("kvBlock", 13);
        byName.put("tableStride", 17);
        byName.put("numBlocks", 19);
        assertEquals(members.size(), words.length, "Params.words() vs the block");
        for (int i = 0; i < words.length; i++) {
            String type = members.get(i)[0];
            String name = members.get(i)[1];
            assertTrue(byName.containsKey(name), "push constant " + name + " is new to this test and to Params");
            assertEquals(byName.get(name), words[i], "word " + i + " (" + type + " " + name + ")");
            boolean isFloat = name.equals("scale") || name.equals("softcap");
            assertEquals(
                    isFloat ? "float" : "int",
                    type,
                    name + ": Params writes it as " + (isFloat ? "float bits" : "an int"));
        }
    }

    @Test
    void everyKernelBindsBuffersZeroToBindingsMinusOne() {
        for (Kernel kernel : Kernel.values()) {
            TreeSet<Integer> bindings = new TreeSet<>();
            Matcher m = BINDING.matcher(compiledSource(kernel));
            while (m.find()) {
                // A second declaration of a binding must be a view (QView4: the tensor read four elements at a time).
                boolean view = m.group(2).matches("\\w+View\\d");
                assertTrue(
                        bindings.add(Integer.parseInt(m.group(1))) || view,
                        kernel + ": binding " + m.group(1) + " twice");
            }
            assertEquals(
                    IntStream.range(0, kernel.bindings).boxed().collect(Collectors.toSet()),
                    bindings,
                    kernel.resource + " vs Kernel." + kernel + ".bindings = " + kernel.bindings);
        }
    }

    @Test
    void storageTypeCodesAreTheShadersOwn() {
        String common = ShaderCompiler.source(Kernel.DELTA);
        Matcher m = TYPE_CODE.matcher(common);
        List<Integer> codes = new ArrayList<>();
        while (m.find()) {
            DType dtype = DType.valueOf(m.group(2));
            assertEquals(Integer.parseInt(m.group(1)), Variant.typeCode(dtype), "LOAD_TYPED's code for " + dtype);
            codes.add(Variant.typeCode(dtype));
        }
        assertEquals(List.of(0, 1), codes, "LOAD_TYPED tests F32 then F16; anything else is BF16");
        assertEquals(2, Variant.typeCode(DType.BF16));
        String pack16 = ShaderCompiler.source(Kernel.PACK16);
        assertTrue(
                pack16.contains("#if OUT_TYPE == " + Variant.typeCode(DType.F16) + "\n"), "pack16.comp's F16 branch");
    }

    /**
     * For plans on devices from 16 to 64 KiB of shared memory, with workgroups of 128 and 256: TilePlan's
     * count of shared floats is the sum of each kernel's {@code shared float} arrays, every plan fits its
     * device, and a forward key block four keys longer would not (the plan is not needlessly small).
     */
    @Test
    void sharedArraysAreWhatTilePlanBudgets() {
        for (long sharedBytes : new long[] {16 << 10, 32 << 10, 48 << 10, 64 << 10}) {
            for (int subgroup : new int[] {32, 256}) {
                DeviceInfo device = device(sharedBytes, subgroup);
                long budget = TilePlan.sharedFloats(device);
                for (int hd : TilePlan.BUCKETS) {
                    TilePlan forward = TilePlan.forward(device, hd);
                    assertEquals(
                            declaredFloats(Kernel.FORWARD, forward),
                            forward.sharedFloats(Kernel.FORWARD),
                            "forward " + forward);
                    assertTrue(forward.sharedFloats(Kernel.FORWARD) <= budget, forward + " over " + budget);
                    TilePlan longer = new TilePlan(
                            hd, forward.rows(), forward.keys() + 4, forward.threadsPerRow(), forward.workgroup());
                    assertTrue(
                            forward.keys() == 64 || declaredFloats(Kernel.FORWARD, longer) > budget,
                            forward + " leaves room for " + longer + " in " + budget);
                    if (sharedBytes < 32 << 10 && hd == 256) {
                        continue; // no square backward tile of head dim 256 fits 16 KiB
                    }
                    TilePlan backward = TilePlan.backward(device, hd);
                    for (Kernel kernel : new Kernel[] {
                        Kernel.BACKWARD_KV, Kernel.BACKWARD_Q, Kernel.BACKWARD_KV_MASKED, Kernel.BACKWARD_Q_MASKED
                    }) {
                        assertEquals(
                                declaredFloats(kernel, backward),
                                backward.sharedFloats(kernel),
                                kernel + " " + backward);
                        assertTrue(
                                backward.sharedFloats(kernel) <= budget, kernel + " " + backward + " over " + budget);
                    }
                }
            }
        }
        // blocked forward: every head-dim bucket, on 16 to 64 KiB, workgroups of 128 and 256
        for (long sharedBytes : new long[] {16 << 10, 32 << 10, 48 << 10, 64 << 10}) {
            for (int subgroup : new int[] {32, 256}) {
                DeviceInfo device = device(sharedBytes, subgroup);
                for (int hd : TilePlan.BUCKETS) {
                    TilePlan blocked = TilePlan.blocked(device, hd);
                    Kernel kernel = Kernel.FORWARD_BLOCKED;
                    if (blocked == null) {
                        // Head dims up to 64 always get a blocked tile from 32 KiB on (the plain kernel runs
                        // the others).
                        assertTrue(sharedBytes < 32 << 10 || hd > 64, "no blocked plan for hd " + hd);
                        continue;
                    }
                    assertEquals(declaredFloats(kernel, blocked), blocked.sharedFloats(kernel), "blocked " + blocked);
                    assertTrue(blocked.sharedFloats(kernel) <= TilePlan.sharedFloats(device), "blocked " + blocked);
                    int rm = blocked.rowsPerThread();
                    assertTrue(rm >= 1 && blocked.rows() % rm == 0, "blocked " + blocked);
                    assertEquals(blocked.workgroup(), blocked.rows() / rm * blocked.threadsPerRow(), "" + blocked);
                    assertEquals(0, blocked.keys() % blocked.threadsPerRow(), "blocked " + blocked);
                    assertEquals(0, hd % blocked.threadsPerRow(), "blocked " + blocked);
                }
            }
        }
        // the blocked forward's subgroup layout, on CPU devices with subgroups of 4 to 16 lanes
        assertFalse(TilePlan.blockedSubgroupLayout(cpuDevice(32 << 10, 32)), "32-lane subgroups: shared memory");
        for (int subgroup : new int[] {4, 8, 16}) {
            DeviceInfo cpu = cpuDevice(32 << 10, subgroup);
            assertTrue(TilePlan.blockedSubgroupLayout(cpu), "subgroup " + subgroup);
            for (int hd : TilePlan.BUCKETS) {
                TilePlan plan = TilePlan.blocked(cpu, hd);
                if (plan == null) {
                    assertTrue(hd > 64, "no subgroup-layout plan for hd " + hd + ", subgroup " + subgroup);
                    continue;
                }
                Kernel kernel = Kernel.FORWARD_BLOCKED_SUBGROUP;
                assertEquals(declaredFloats(kernel, plan), plan.sharedFloats(kernel), "subgroup layout " + plan);
                assertTrue(plan.sharedFloats(kernel) <= TilePlan.sharedFloats(cpu), "subgroup layout " + plan);
                assertEquals(subgroup, plan.threadsPerRow(), "a row group is one subgroup: " + plan);
                assertEquals(plan.workgroup(), plan.rows() / plan.rowsPerThread() * subgroup, "" + plan);
            }
        }
        assertFalse(TilePlan.blockedSubgroupLayout(device(32 << 10, 32)), "GPUs run the shared-memory reductions");
        // decode: every row count and head-dim bucket it runs, on 16 to 64 KiB
        for (long sharedBytes : new long[] {16 << 10, 32 << 10, 64 << 10}) {
            DeviceInfo device = device(sharedBytes, 32);
            for (int hd : new int[] {32, 64, 128}) {
                for (int rows = 1; rows <= TilePlan.DECODE_MAX_ROWS; rows++) {
                    TilePlan decode = TilePlan.decode(device, hd, rows);
                    if (decode == null) {
                        assertTrue(sharedBytes < 32 << 10, "no decode plan for hd " + hd + ", " + rows + " rows");
                        continue;
                    }
                    assertEquals(
                            declaredFloats(Kernel.DECODE, decode),
                            decode.sharedFloats(Kernel.DECODE),
                            "decode " + decode);
                    assertTrue(decode.sharedFloats(Kernel.DECODE) <= TilePlan.sharedFloats(device), "decode " + decode);
                    assertTrue(decode.rows() >= rows && decode.workgroup() <= 128, "decode " + decode);
                }
            }
        }
        for (Kernel kernel : new Kernel[] {Kernel.DELTA, Kernel.PACK16, Kernel.DECODE_MERGE, Kernel.DECODE_DIRECT}) {
            TilePlan line = TilePlan.elementwise(device(32 << 10, 32));
            assertEquals(declaredFloats(kernel, line), line.sharedFloats(kernel), kernel.toString());
        }
    }

    /**
     * The masked forward's header offsets and tile codes are DeviceMasks' constants, and the header fits before
     * the tile table.
     */
    @Test
    void maskTableLayoutIsDeviceMasksOwn() {
        Map<String, Integer> expected = new LinkedHashMap<>();
        expected.put("META_HAS_BITS", DeviceMasks.HAS_BITS);
        expected.put("META_BITS_B", DeviceMasks.BITS_B);
        expected.put("META_BITS_H", DeviceMasks.BITS_H);
        expected.put("META_WORDS_PER_ROW", DeviceMasks.WORDS_PER_ROW);
        expected.put("META_HAS_BIAS", DeviceMasks.HAS_BIAS);
        expected.put("META_BIAS_B", DeviceMasks.BIAS_B);
        expected.put("META_BIAS_H", DeviceMasks.BIAS_H);
        expected.put("META_TILES_B", DeviceMasks.TILES_B);
        expected.put("META_TILES_H", DeviceMasks.TILES_H);
        expected.put("META_KEY_TILES", DeviceMasks.KEY_TILES);
        expected.put("META_HEADER", DeviceMasks.HEADER);
        expected.put("TILE_EMPTY", DeviceMasks.TILE_EMPTY);
        expected.put("TILE_PARTIAL", DeviceMasks.TILE_PARTIAL);
        expected.put("TILE_FULL", DeviceMasks.TILE_FULL);
        for (Kernel kernel : Kernel.values()) {
            Matcher m = Pattern.compile("#define ((?:META|TILE)_\\w+) (\\d+)").matcher(compiledSource(kernel));
            Map<String, Integer> declared = new LinkedHashMap<>();
            while (m.find()) {
                declared.put(m.group(1), Integer.parseInt(m.group(2)));
            }
            assertEquals(kernel.masked() ? expected : Map.of(), declared, kernel + ": MASKS constants vs DeviceMasks");
        }
        assertTrue(DeviceMasks.KEY_TILES < DeviceMasks.HEADER, "the header overlaps the tile table");
        // The masked variants declare the plain kernels' shared arrays and no others.
        for (int hd : TilePlan.BUCKETS) {
            TilePlan plan = TilePlan.forward(device(32 << 10, 32), hd);
            assertEquals(declaredFloats(Kernel.FORWARD, plan), plan.sharedFloats(Kernel.FORWARD_MASKED));
            TilePlan blocked = TilePlan.blocked(device(32 << 10, 32), hd);
            if (blocked != null) {
                assertEquals(
                        declaredFloats(Kernel.FORWARD_BLOCKED, blocked),
                        blocked.sharedFloats(Kernel.FORWARD_BLOCKED_MASKED));
            }
            TilePlan subgroup = TilePlan.blocked(cpuDevice(32 << 10, 8), hd);
            if (subgroup != null) {
                assertEquals(
                        declaredFloats(Kernel.FORWARD_BLOCKED_SUBGROUP, subgroup),
                        subgroup.sharedFloats(Kernel.FORWARD_BLOCKED_SUBGROUP_MASKED));
            }
        }
    }

    /**
     * {@code kernel}'s source as compiled: the {@code #ifdef MASKS ... #endif // MASKS} regions of its GLSL and
     * common.glsl only in the {@linkplain Kernel#masked masked} kernels, which define MASKS, and the {@code #if
     * SERVING} regions only in the others (a masked variant has SERVING 0).
     */
    private static String compiledSource(Kernel kernel) {
        String source = ShaderCompiler.source(kernel);
        // A masked variant is never a serving one (SERVING 0): its bindings 6 .. 8 are the masks'. A kernel that
        // defines OWN_MASK_BINDINGS (the backward) declares the mask buffers itself instead of common.glsl.
        if (kernel.masked() && source.contains("#define OWN_MASK_BINDINGS\n")) {
            source = source.replaceAll("(?s)#ifndef OWN_MASK_BINDINGS[^\n]*\n.*?#endif // OWN_MASK_BINDINGS", "");
        }
        return kernel.masked()
                ? source.replaceAll("(?s)#if SERVING[^\n]*\n.*?#endif[^\n]*\n", "")
                : source.replaceAll("(?s)#ifdef MASKS\n.*?#endif // MASKS", "");
    }

    /** The sum of {@code kernel}'s shared float arrays with the plan's macros (each size a product of them). */
    private static long declaredFloats(Kernel kernel, TilePlan plan) {
        Map<String, Long> macros = Map.of(
                "BR",
                (long) plan.rows(),
                "BC",
                (long) plan.keys(),
                "HD",
                (long) plan.hd(),
                "HDP",
                plan.hd() + 1L,
                "WG",
                (long) plan.workgroup(),
                "TPR",
                (long) plan.threadsPerRow());
        long total = 0;
        String source = ShaderCompiler.source(kernel);
        if (kernel == Kernel.FORWARD_BLOCKED_SUBGROUP) {
            // SUBGROUP_LAYOUT 1 compiles no "#if !SUBGROUP_LAYOUT" region (none of them nests another #if before
            // its shared arrays end).
            source = source.replaceAll("(?s)#if !SUBGROUP_LAYOUT.*?#endif", "");
        }
        Matcher m = SHARED.matcher(source);
        while (m.find()) {
            long size = 1;
            for (String factor : m.group(2).split("\\*")) {
                String f = factor.strip();
                Long value = f.matches("\\d+") ? Long.valueOf(f) : macros.get(f);
                if (value == null) {
                    fail(kernel.resource + ": shared array " + m.group(1) + "[" + m.group(2) + "] is not a product of"
                            + " BR, BC, HD and numbers; teach this test and TilePlan.sharedFloats its size");
                }
                size *= value;
            }
            total += size;
        }
        return total;
    }

    private static DeviceInfo cpuDevice(long sharedBytes, int subgroup) {
        DeviceInfo d = device(sharedBytes, subgroup);
        return new DeviceInfo(
                d.index(),
                "test CPU device",
                DeviceInfo.Kind.CPU,
                d.apiVersion(),
                subgroup,
                sharedBytes,
                d.maxStorageBufferRange(),
                d.maxWorkgroupInvocations(),
                d.maxWorkgroupSizeX(),
                d.maxWorkgroupCount(),
                false,
                false,
                false,
                true);
    }

    private static DeviceInfo device(long sharedBytes, int subgroup) {
        return new DeviceInfo(
                0,
                "test device",
                DeviceInfo.Kind.DISCRETE_GPU,
                "1.1.0",
                subgroup,
                sharedBytes,
                1L << 30,
                1024,
                1024,
                new int[] {65535, 65535, 65535},
                false,
                false,
                false,
                false);
    }
}
