package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Gradients;
import dev.aule.Tensor;
import dev.aule.spi.Accuracy;
import dev.aule.testing.BackwardCases;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A forward grid split over several submissions ({@code -Daule.vulkan.maxTilesPerSubmit}) computes the same bits
 * as one dispatch, for the plain and the blocked forward and for the backward kernels, on mapped memory and
 * through staging.
 */
class SplitSubmissionTest {
    private static VulkanDevice mapped;
    private static VulkanDevice unmapped;

    @BeforeAll
    static void open() {
        VulkanTestSupport.backend(); // skips (or fails under AULE_REQUIRE_VULKAN=1) without Vulkan
        mapped = VulkanDevice.open();
        unmapped = VulkanDevice.openUnmapped();
    }

    @AfterAll
    static void close() {
        if (mapped != null) {
            mapped.close();
        }
        if (unmapped != null) {
            unmapped.close();
        }
    }

    private record Result(float[] out, float[] lse, long submits) {}

    private static Result run(VulkanDevice device, Tensor q, Tensor k, Tensor v, AttentionOptions options, String tiles)
            throws Throwable {
        Tensor out = Tensor.allocate(DType.F32, q.batch(), q.heads(), q.seqLen(), v.headDim());
        Tensor lse = Tensor.allocate(DType.F32, q.batch(), q.heads(), q.seqLen(), 1);
        long[] submits = new long[1];
        VulkanTestSupport.withProperty(AttentionKernels.MAX_TILES_PROPERTY, tiles, () -> {
            long before = device.submits();
            new VulkanBackend(device).forward(q, k, v, out, lse, options);
            submits[0] = device.submits() - before;
        });
        return new Result(out.toFloatArray(), lse.toFloatArray(), submits[0]);
    }

    @Test
    void aSplitGridIsBitIdenticalToOneDispatch() throws Throwable {
        SplittableRandom rnd = new SplittableRandom(31);
        Tensor q = Tensors.random(rnd, DType.F32, 1, 4, 260, 32);
        Tensor k = Tensors.random(rnd, DType.F16, 1, 2, 200, 32);
        Tensor v = Tensors.random(rnd, DType.F32, 1, 2, 200, 32);
        for (String kernel : new String[] {"forward", "blocked"}) {
            for (boolean causal : new boolean[] {false, true}) {
                AttentionOptions options =
                        AttentionOptions.builder().causal(causal).build();
                Tensor ref = Tensor.allocate(DType.F32, 1, 4, 260, 32);
                Backends.get("reference").forward(q, k, v, ref, null, options);
                for (VulkanDevice device : new VulkanDevice[] {mapped, unmapped}) {
                    String what = kernel + " causal " + causal + " mapped " + device.mapsBuffers();
                    VulkanTestSupport.withProperty(AttentionKernels.KERNEL_PROPERTY, kernel, () -> {
                        Result whole = run(device, q, k, v, options, null);
                        Result split = run(device, q, k, v, options, "1");
                        assertEquals(1, whole.submits(), what + ": unsplit on a CPU device");
                        assertTrue(
                                split.submits() >= 3, what + ": one submission per query tile, got " + split.submits());
                        assertArrayEquals(bits(whole.out()), bits(split.out()), what + " out");
                        assertArrayEquals(bits(whole.lse()), bits(split.lse()), what + " lse");
                        Tensor got = Tensor.of(split.out(), 1, 4, 260, 32);
                        assertTrue(Accuracy.relativeError(got, ref) < 1e-3, what + " against the reference");
                    });
                }
            }
        }
    }

    /** The dK/dV grid split by key blocks and the dQ grid by query tiles give the same gradients, bit for bit. */
    @Test
    void aSplitBackwardIsBitIdenticalToOneDispatchEach() throws Throwable {
        SplittableRandom rnd = new SplittableRandom(34);
        BackwardCases.Case c = new BackwardCases.Case(
                DType.F32,
                1,
                4,
                2,
                70,
                90,
                32,
                32,
                AttentionOptions.builder().causal(true).build());
        BackwardCases.Inputs in = BackwardCases.inputs(rnd, c, Backends.get("reference"));
        Gradients expected = BackwardCases.backward(Backends.get("reference"), in, c.options(), DType.F32);
        for (VulkanDevice device : new VulkanDevice[] {mapped, unmapped}) {
            VulkanBackend vulkan = new VulkanBackend(device);
            Gradients whole = BackwardCases.backward(vulkan, in, c.options(), DType.F32);
            Gradients[] split = new Gradients[1];
            long[] submits = new long[1];
            VulkanTestSupport.withProperty(AttentionKernels.MAX_TILES_PROPERTY, "1", () -> {
                long before = device.submits();
                split[0] = BackwardCases.backward(vulkan, in, c.options(), DType.F32);
                submits[0] = device.submits() - before;
            });
            String what = "mapped " + device.mapsBuffers();
            assertTrue(submits[0] >= 4, what + ": one submission per tile, got " + submits[0]);
            assertArrayEquals(
                    bits(whole.dq().toFloatArray()), bits(split[0].dq().toFloatArray()), what + " dq");
            assertArrayEquals(
                    bits(whole.dk().toFloatArray()), bits(split[0].dk().toFloatArray()), what + " dk");
            assertArrayEquals(
                    bits(whole.dv().toFloatArray()), bits(split[0].dv().toFloatArray()), what + " dv");
            double error = BackwardCases.error(split[0], expected);
            assertTrue(error < 1e-4, what + ": gradient error " + error);
        }
    }

    @Test
    void theDeviceTimeOfASplitCallAddsItsParts() throws Throwable {
        SplittableRandom rnd = new SplittableRandom(32);
        Tensor q = Tensors.random(rnd, DType.F32, 1, 2, 200, 32);
        VulkanBackend vulkan = new VulkanBackend(mapped);
        VulkanTestSupport.withProperty(AttentionKernels.MAX_TILES_PROPERTY, "1", () -> {
            Tensor out = Tensor.allocate(DType.F32, 1, 2, 200, 32);
            vulkan.forward(q, q, q, out, null, AttentionOptions.defaults());
            if (mapped.timestampBits() > 0) {
                assertTrue(vulkan.lastDeviceNanos().orElse(-1) > 0, "device time of a split call");
            }
        });
    }

    @Test
    void aBadTileCountIsRefusedAndNothingIsWritten() throws Throwable {
        Tensor q = Tensors.random(new SplittableRandom(33), DType.F32, 1, 2, 100, 32);
        float[] sevens = new float[2 * 100 * 32];
        Arrays.fill(sevens, 7f);
        Tensor out = Tensor.of(sevens.clone(), 1, 2, 100, 32);
        for (String bad : new String[] {"0", "-3", "many"}) {
            VulkanTestSupport.withProperty(AttentionKernels.MAX_TILES_PROPERTY, bad, () -> {
                IllegalArgumentException e = assertThrows(
                        IllegalArgumentException.class,
                        () -> new VulkanBackend(mapped).forward(q, q, q, out, null, AttentionOptions.defaults()));
                assertTrue(
                        e.getMessage().startsWith("-D" + AttentionKernels.MAX_TILES_PROPERTY + "=" + bad),
                        e.getMessage());
            });
        }
        assertArrayEquals(sevens, out.toFloatArray(), "nothing written");
    }

    private static int[] bits(float[] values) {
        int[] bits = new int[values.length];
        for (int i = 0; i < values.length; i++) {
            bits[i] = Float.floatToRawIntBits(values[i]);
        }
        return bits;
    }
}
