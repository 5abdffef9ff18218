package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.reference.ReferenceBackend;
import dev.aule.spi.AttentionShape;
import dev.aule.spi.Capabilities;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * forward_coop.comp's logic on the device under test, with its matrix operations emulated over plain arrays
 * (COOP_EMULATED): tiling, offsets, strides and layouts of every load and store, masks, softcap, ALiBi, GQA, the
 * online softmax and lse, against the float64 reference. Two variants (HD 64 16x16x16 with two subgroups and 32
 * keys a block; HD 128 16x8x16 with one and 16), since a variant costs seconds of compile on lavapipe. On lavapipe's 8-lane subgroups (fewer lanes than the
 * 16 rows of a subgroup's tile) it is also the regression test of the softmax update that once served only rows
 * 0 .. SG-1 (the others came out 0).
 */
class CoopEmulatedTest {
    private static final Capabilities CAPS = Capabilities.of(256, EnumSet.allOf(DType.class));

    private final VulkanBackend vulkan = VulkanTestSupport.backend();

    @Test
    void theEmulatedKernelMatchesTheReference() {
        CoopPlan plan = new CoopPlan(64, CoopFakes.f16(16, 16, 16), subgroup(), 2, 32, false);
        float[] slopes4 = {0.5f, 0.25f, 0.125f, 0.0625f};
        Object[][] cases = {
            {"MHA, no mask", 2, 2, 40, 40, 64, AttentionOptions.defaults()},
            // NaN and Inf in the last value row: only the last row sees it, every other row stays finite
            {"causal, non-finite values in the last key", 2, 2, 40, 40, 64, causal(), 39},
            {
                "GQA 4:1 causal, Sq < Sk",
                4,
                1,
                33,
                75,
                64,
                AttentionOptions.builder().causal(true).build()
            },
            {
                "window (7, 3), softcap 5, ALiBi",
                4,
                2,
                50,
                50,
                48,
                AttentionOptions.builder()
                        .window(7, 3)
                        .softcap(5f)
                        .alibiSlopes(slopes4)
                        .build()
            },
            {
                "causal Sq > Sk: rows that see nothing",
                1,
                1,
                45,
                20,
                64,
                AttentionOptions.builder().causal(true).build()
            },
            {
                "one query row, scale 0.5, D 17",
                2,
                1,
                1,
                70,
                17,
                AttentionOptions.builder().scale(0.5f).build()
            },
        };
        assertEquals(List.of(), failures(plan, cases));
    }

    /** A second variant: HD 128, an N of 8 (K^T and V tiles narrower than deep), one subgroup, 16 keys a block. */
    @Test
    void theEmulatedKernelMatchesTheReferenceAtHeadDim128WithNarrowTiles() {
        CoopPlan plan = new CoopPlan(128, CoopFakes.f16(16, 8, 16), subgroup(), 1, 16, false);
        Object[][] cases = {
            {
                "D 128, GQA 2:1 causal",
                2,
                1,
                37,
                37,
                128,
                AttentionOptions.builder().causal(true).build()
            },
            {
                // key 0 holds NaN and Inf, and no row sees it
                "D 100, window (12, 0), Sk > Sq, non-finite values hidden from every row",
                1,
                1,
                20,
                61,
                100,
                AttentionOptions.builder().window(12, 0).build(),
                0
            },
        };
        assertEquals(List.of(), failures(plan, cases));
    }

    /** The grid split over submissions of one query tile each computes the bits of the whole grid. */
    @Test
    void aSplitGridGivesTheBitsOfTheWholeOne() throws Throwable {
        CoopPlan plan = new CoopPlan(64, CoopFakes.f16(16, 16, 16), subgroup(), 2, 32, false);
        VulkanDevice device = vulkan.device();
        SplittableRandom random = new SplittableRandom(7);
        Tensor q = random(random, 4, 70, 64);
        Tensor k = random(random, 2, 90, 64);
        Tensor v = random(random, 2, 90, 64);
        AttentionOptions options = causal();
        Tensor whole = Tensor.allocate(DType.F32, 1, 4, 70, 64);
        Tensor wholeLse = Tensor.allocate(DType.F32, 1, 4, 70, 1);
        run(device, plan, q, k, v, whole, wholeLse, options);
        Tensor split = Tensor.allocate(DType.F32, 1, 4, 70, 64);
        Tensor splitLse = Tensor.allocate(DType.F32, 1, 4, 70, 1);
        VulkanTestSupport.withProperty(
                AttentionKernels.MAX_TILES_PROPERTY, "1", () -> run(device, plan, q, k, v, split, splitLse, options));
        assertArrayEquals(whole.toFloatArray(), split.toFloatArray());
        assertArrayEquals(wholeLse.toFloatArray(), splitLse.toFloatArray());
    }

    private static AttentionOptions causal() {
        return AttentionOptions.builder().causal(true).build();
    }

    /** The device's subgroup size, once the emulation can run there (else the test is skipped). */
    private int subgroup() {
        VulkanDevice device = vulkan.device();
        int sg = device.info().subgroupSize();
        // the emulation spreads each matrix over the subgroup: its size must divide the matrices' 128 or 256 elements
        Assumptions.assumeTrue(sg >= 4 && sg <= 64 && 128 % sg == 0, "subgroup size " + sg);
        // lavapipe at 1024-bit vectors reports 32 lanes but runs 16-lane subgroups (see TilePlan.blockedSubgroupLayout)
        Assumptions.assumeTrue(!device.info().isCpu() || sg <= 16, "a CPU device's subgroup of " + sg);
        return sg;
    }

    /** Each case through the emulated {@code plan} against the reference: the failures, in words. */
    private List<String> failures(CoopPlan plan, Object[][] cases) {
        VulkanDevice device = vulkan.device();
        CoopSupport.Shape shape = plan.shape();
        long scratch = 4L * plan.subgroups() * (shape.m() * shape.k() + shape.k() * shape.n());
        Assumptions.assumeTrue(plan.sharedBytes() + scratch <= device.info().sharedMemoryBytes());
        List<String> failures = new ArrayList<>();
        SplittableRandom random = new SplittableRandom(2024);
        for (Object[] c : cases) {
            int hq = (int) c[1];
            int hkv = (int) c[2];
            int sq = (int) c[3];
            int sk = (int) c[4];
            int d = (int) c[5];
            AttentionOptions options = (AttentionOptions) c[6];
            Tensor q = random(random, hq, sq, d);
            Tensor k = random(random, hkv, sk, d);
            Tensor v = random(random, hkv, sk, d);
            if (c.length > 7) { // a value row with NaN and Inf in it
                int key = (int) c[7];
                v.set(0, 0, key, 3, Float.NaN);
                v.set(0, hkv - 1, key, 0, Float.POSITIVE_INFINITY);
            }
            Tensor out = Tensor.allocate(DType.F32, 1, hq, sq, d);
            Tensor lse = Tensor.allocate(DType.F32, 1, hq, sq, 1);
            Tensor wantOut = Tensor.allocate(DType.F32, 1, hq, sq, d);
            Tensor wantLse = Tensor.allocate(DType.F32, 1, hq, sq, 1);
            out.fill(Float.NaN);
            run(device, plan, q, k, v, out, lse, options);
            new ReferenceBackend().forward(q, k, v, wantOut, wantLse, options);
            String bad = CoopCheck.compare("out", out.toFloatArray(), wantOut.toFloatArray());
            if (bad == null) {
                bad = CoopCheck.compare("lse", lse.toFloatArray(), wantLse.toFloatArray());
            }
            if (bad != null) {
                failures.add(c[0] + ": " + bad);
            }
        }
        return failures;
    }

    private static void run(
            VulkanDevice device,
            CoopPlan plan,
            Tensor q,
            Tensor k,
            Tensor v,
            Tensor out,
            Tensor lse,
            AttentionOptions options) {
        AttentionShape shape = AttentionShape.forward(q, k, v, out, lse, options, CAPS);
        Submission.run(device, (scope, s) -> {
            DeviceBuffer qb = HostCopy.upload(device, scope, s, q);
            DeviceBuffer kb = HostCopy.upload(device, scope, s, k);
            DeviceBuffer vb = HostCopy.upload(device, scope, s, v);
            DeviceBuffer ob = scope.add(DeviceBuffer.allocate(device, HostCopy.bytes(DType.F32, out.shape())));
            DeviceBuffer lb = scope.add(DeviceBuffer.allocate(device, HostCopy.bytes(DType.F32, lse.shape())));
            DeviceBuffer slopes = kb;
            if (options.hasAlibi()) {
                float[] values = options.alibiSlopes();
                slopes = scope.add(DeviceBuffer.allocate(device, (long) values.length * Float.BYTES));
                s.write(slopes, m -> MemorySegment.copy(values, 0, m, ValueLayout.JAVA_FLOAT, 0, values.length));
            }
            AttentionKernels.coop(
                    s,
                    device.info(),
                    plan,
                    true,
                    shape,
                    options,
                    new AttentionKernels.InputTypes(DType.F16, DType.F16, DType.F16),
                    qb,
                    kb,
                    vb,
                    ob,
                    lb,
                    true,
                    slopes);
            HostCopy.download(s, ob, DType.F32, out);
            HostCopy.download(s, lb, DType.F32, lse);
        });
    }

    private static Tensor random(SplittableRandom random, int heads, int seq, int d) {
        Tensor t = Tensor.allocate(DType.F16, 1, heads, seq, d);
        for (int h = 0; h < heads; h++) {
            for (int s = 0; s < seq; s++) {
                for (int i = 0; i < d; i++) {
                    t.set(0, h, s, i, (float) (2 * random.nextDouble() - 1));
                }
            }
        }
        return t;
    }
}
