package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.AttentionShape;
import dev.aule.testing.CaseFailures;
import dev.aule.testing.ForwardCase;
import dev.aule.testing.Layout;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The decode kernel (decode.comp and its merge pass) against the float64 reference: Sq 1 to 4, GQA 1:1, 4:1
 * and 8:1, Sk from 1 to 3000 (one split, several, and Sk not a multiple of a split or a block), head dims 32,
 * 64 and 128, every option and storage type, lse included; the kernel is forced, so a dispatcher change
 * cannot route these cases elsewhere unnoticed. Also: the dispatcher's conditions, and a sequence's bits
 * alone and inside a batch. The kernel uses no subgroup operations, so its results do not depend on the
 * device's subgroup size.
 */
class DecodeKernelTest {
    private final VulkanBackend vulkan = VulkanTestSupport.backend();

    @Test
    void decodeShapesMatchTheReference() throws Throwable {
        decodeShapes("decode");
    }

    @Test
    void decodeShapesMatchTheReferenceWithoutSharedMemory() throws Throwable {
        decodeShapes("decode-direct");
    }

    private void decodeShapes(String kernel) throws Throwable {
        int[] keyLens = {1, 5, 64, 255, 257, 600, 1031, 3000};
        int[] groups = {1, 4, 8};
        int[] dims = {32, 64, 128};
        SplittableRandom rnd = new SplittableRandom(41);
        CaseFailures failures = new CaseFailures();
        VulkanTestSupport.withProperty(AttentionKernels.KERNEL_PROPERTY, kernel, () -> {
            long seed = 7_000;
            for (int sk : keyLens) {
                for (int group : groups) {
                    int sq = 1 + rnd.nextInt(4);
                    int d = dims[rnd.nextInt(dims.length)];
                    int dv = rnd.nextInt(4) == 0 ? dims[rnd.nextInt(dims.length)] : d;
                    int kvHeads = group == 8 ? 1 : 1 + rnd.nextInt(2);
                    if (sk == 3000) {
                        d = Math.min(d, 64); // keeps the float64 reference quick
                        dv = d;
                    }
                    DType qType = halfOrFloat(rnd);
                    DType kvType = halfOrFloat(rnd);
                    AttentionOptions options = ForwardCase.randomOptions(rnd, kvHeads * group, sk);
                    failures.check(
                            vulkan,
                            new ForwardCase(
                                    seed++,
                                    1 + rnd.nextInt(2),
                                    kvHeads,
                                    group,
                                    sq,
                                    sk,
                                    d,
                                    dv,
                                    qType,
                                    kvType,
                                    DType.F32,
                                    layouts(Layout.BHSD),
                                    false,
                                    options));
                }
            }
        });
        failures.assertNone(kernel + " kernel cases");
    }

    /** Each option alone on a multi-split shape, and the edges: rows that see nothing, a one-key window. */
    @Test
    void everyOptionOnSplitKeysMatchesTheReference() throws Throwable {
        AttentionOptions[] options = {
            AttentionOptions.defaults(),
            AttentionOptions.builder().causal(true).build(),
            AttentionOptions.builder().window(100, 0).build(),
            AttentionOptions.builder().window(0, 0).build(),
            AttentionOptions.builder().softcap(5f).scale(2f).build(),
            AttentionOptions.builder()
                    .causal(true)
                    .alibiSlopes(new float[] {0.5f, 0.25f, 0.125f, 0.0625f})
                    .build(),
        };
        CaseFailures failures = new CaseFailures();
        for (String kernel : new String[] {"decode", "decode-direct"}) {
            VulkanTestSupport.withProperty(
                    AttentionKernels.KERNEL_PROPERTY, kernel, () -> decodeOptions(failures, options));
        }
        failures.assertNone("decode options");
    }

    private void decodeOptions(CaseFailures failures, AttentionOptions[] options) {
        {
            long seed = 9_000;
            for (AttentionOptions o : options) {
                failures.check(
                        vulkan,
                        new ForwardCase(
                                seed++,
                                1,
                                1,
                                4,
                                2,
                                777,
                                64,
                                64,
                                DType.F32,
                                DType.F32,
                                DType.F32,
                                layouts(Layout.BHSD),
                                true,
                                o));
            }
            // Sq > Sk, causal: the first rows see no key (out 0, lse -inf); BF16 in, F16 out.
            failures.check(
                    vulkan,
                    new ForwardCase(
                            seed++,
                            2,
                            2,
                            2,
                            4,
                            2,
                            128,
                            128,
                            DType.BF16,
                            DType.BF16,
                            DType.F16,
                            layouts(Layout.BSHD),
                            false,
                            AttentionOptions.builder().causal(true).build()));
        }
    }

    @Test
    void aSequenceHasTheSameBitsAloneAndInABatch() throws Throwable {
        for (String kernel : new String[] {"decode", "decode-direct", "auto"}) {
            VulkanTestSupport.withProperty(AttentionKernels.KERNEL_PROPERTY, kernel, this::sameBitsAloneAndInABatch);
        }
    }

    private void sameBitsAloneAndInABatch() {
        SplittableRandom rnd = new SplittableRandom(5);
        int batch = 3;
        for (int sk : new int[] {300, 1500}) {
            Tensor q = Tensors.random(rnd, DType.F32, batch, 8, 1, 64);
            Tensor k = Tensors.random(rnd, DType.F32, batch, 2, sk, 64);
            Tensor v = Tensors.random(rnd, DType.F32, batch, 2, sk, 64);
            AttentionOptions options = AttentionOptions.builder().causal(true).build();
            AttentionShape shape = new AttentionShape(batch, 8, 2, 1, sk, 64, 64);
            Kernel chosen = AttentionKernels.chooseForward(info(), shape).kernel();
            assertTrue(chosen == Kernel.DECODE || chosen == Kernel.DECODE_DIRECT, chosen.toString());
            Tensor out = Tensor.allocate(DType.F32, batch, 8, 1, 64);
            Tensor lse = Tensor.allocate(DType.F32, batch, 8, 1, 1);
            vulkan.forward(q, k, v, out, lse, options);
            for (int b = 0; b < batch; b++) {
                Tensor alone = Tensor.allocate(DType.F32, 1, 8, 1, 64);
                Tensor aloneLse = Tensor.allocate(DType.F32, 1, 8, 1, 1);
                vulkan.forward(
                        q.sequence(b, 0, 1), k.sequence(b, 0, sk), v.sequence(b, 0, sk), alone, aloneLse, options);
                assertArrayEquals(bits(out.sequence(b, 0, 1)), bits(alone), "out of sequence " + b + ", Sk " + sk);
                assertArrayEquals(bits(lse.sequence(b, 0, 1)), bits(aloneLse), "lse of sequence " + b + ", Sk " + sk);
            }
        }
    }

    @Test
    void theDispatcherNamesEveryCondition() throws Throwable {
        DeviceInfo device = info();
        assertNull(AttentionKernels.decodeRefusal(device, new AttentionShape(1, 32, 4, 2, 900, 128, 128)));
        assertEquals(
                device.isCpu() ? Kernel.DECODE_DIRECT : Kernel.DECODE,
                AttentionKernels.chooseForward(device, new AttentionShape(4, 8, 8, 1, 10, 64, 64))
                        .kernel());
        String rows = AttentionKernels.decodeRefusal(device, new AttentionShape(1, 8, 1, 5, 50, 64, 64));
        assertTrue(rows.contains("40 query rows"), rows);
        String dim = AttentionKernels.decodeRefusal(device, new AttentionShape(1, 1, 1, 1, 50, 64, 256));
        assertTrue(dim.contains("head dim 256"), dim);
        AttentionShape prefill = new AttentionShape(1, 4, 4, 64, 64, 64, 64);
        assertEquals(
                TilePlan.blockedSubgroupLayout(device) ? Kernel.FORWARD_BLOCKED_SUBGROUP : Kernel.FORWARD_BLOCKED,
                AttentionKernels.chooseForward(device, prefill).kernel());
        assertNull(AttentionKernels.blockedRefusal(device, prefill));
        // Where no blocked tile fits (head dim 256 on 32 KiB), the plain kernel runs, and the reason says why.
        AttentionShape wide = new AttentionShape(1, 2, 2, 64, 64, 256, 256);
        if (TilePlan.blocked(device, 256) == null) {
            AttentionKernels.ForwardChoice choice = AttentionKernels.chooseForward(device, wide);
            assertEquals(Kernel.FORWARD, choice.kernel());
            assertTrue(choice.reason().contains("too little shared memory for a blocked tile"), choice.reason());
        }
        VulkanTestSupport.withProperty(
                AttentionKernels.KERNEL_PROPERTY,
                "forward",
                () -> assertEquals(
                        Kernel.FORWARD,
                        AttentionKernels.chooseForward(device, new AttentionShape(1, 8, 8, 1, 10, 64, 64))
                                .kernel()));
        VulkanTestSupport.withProperty(AttentionKernels.KERNEL_PROPERTY, "decode", () -> {
            IllegalArgumentException e =
                    assertThrows(IllegalArgumentException.class, () -> AttentionKernels.chooseForward(device, prefill));
            assertTrue(e.getMessage().contains("64 query rows"), e.getMessage());
        });
        VulkanTestSupport.withProperty(AttentionKernels.KERNEL_PROPERTY, "fastest", () -> {
            IllegalArgumentException e =
                    assertThrows(IllegalArgumentException.class, () -> AttentionKernels.chooseForward(device, prefill));
            assertTrue(
                    e.getMessage().contains("must be auto, blocked, forward, decode or decode-direct"), e.getMessage());
        });
        // Splits: one per 256 keys, capped by the device kind; never depending on the batch.
        assertEquals(1, AttentionKernels.decodeSplits(device, 256));
        assertEquals(2, AttentionKernels.decodeSplits(device, 257));
        assertTrue(AttentionKernels.decodeSplits(device, 1 << 20) <= 32);
    }

    private DeviceInfo info() {
        return vulkan.device().info();
    }

    private static int[] bits(Tensor t) {
        float[] f = t.toFloatArray();
        int[] out = new int[f.length];
        for (int i = 0; i < f.length; i++) {
            out[i] = Float.floatToRawIntBits(f[i]);
        }
        return out;
    }

    private static DType halfOrFloat(SplittableRandom rnd) {
        return switch (rnd.nextInt(3)) {
            case 0 -> DType.F16;
            case 1 -> DType.BF16;
            default -> DType.F32;
        };
    }

    private static Layout[] layouts(Layout l) {
        return new Layout[] {l, l, l, l};
    }
}
