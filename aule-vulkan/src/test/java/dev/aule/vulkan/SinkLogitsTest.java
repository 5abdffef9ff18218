package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Gradients;
import dev.aule.Tensor;
import dev.aule.spi.Accuracy;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.BackwardInputs;
import dev.aule.spi.PagedKv;
import dev.aule.testing.ForwardCase;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Sink logits (sinks.comp after every forward kernel) against the float64 reference: the dense forward on each
 * kernel, with and without an lse asked for, rows that see no key (out 0, lse the sink), device tensors with a
 * 16-bit output, the serving calls, and the backward, which takes the lse that carries the sink.
 */
class SinkLogitsTest {
    private final VulkanBackend vulkan = VulkanTestSupport.backend();
    private final AttentionBackend reference = Backends.get("reference");

    @Test
    void denseForwardMatchesTheReferenceOnEveryKernel() throws Throwable {
        SplittableRandom rnd = new SplittableRandom(601);
        List<String> failures = new ArrayList<>();
        for (String kernel : new String[] {"decode", "decode-direct", "blocked", "forward"}) {
            boolean decode = kernel.startsWith("decode");
            int sq = decode ? 3 : 37;
            int sk = decode ? 300 : 29; // tiled: Sq > Sk, so under causal masking the first rows see no key
            int hq = 4;
            AttentionOptions options =
                    withSinks(rnd, kernel.equals("forward") ? causal() : ForwardCase.randomOptions(rnd, hq, sk), hq);
            Tensor q = Tensors.random(rnd, DType.F32, 2, hq, sq, 32);
            Tensor k = Tensors.random(rnd, DType.F16, 2, 2, sk, 32);
            Tensor v = Tensors.random(rnd, DType.F16, 2, 2, sk, 32);
            Tensor out = Tensor.allocate(DType.F32, 2, hq, sq, 32);
            Tensor lse = Tensor.allocate(DType.F32, 2, hq, sq, 1);
            Tensor outOnly = Tensor.allocate(DType.F32, 2, hq, sq, 32);
            VulkanTestSupport.withProperty(AttentionKernels.KERNEL_PROPERTY, kernel, () -> {
                vulkan.forward(q, k, v, out, lse, options);
                vulkan.forward(q, k, v, outOnly, null, options);
            });
            Tensor ref = Tensor.allocate(DType.F32, 2, hq, sq, 32);
            Tensor refLse = Tensor.allocate(DType.F32, 2, hq, sq, 1);
            reference.forward(q, k, v, ref, refLse, options);
            check(failures, kernel + " " + options, out, lse, ref, refLse, q, k, options);
            if (!Arrays.equals(out.toFloatArray(), outOnly.toFloatArray())) {
                failures.add(kernel + ": out without lse differs from out with it");
            }
        }
        assertTrue(failures.isEmpty(), String.join("\n", failures));
    }

    @Test
    void deviceTensorsAndServingCallsTakeTheSinks() {
        SplittableRandom rnd = new SplittableRandom(602);
        List<String> failures = new ArrayList<>();
        AttentionOptions options = withSinks(rnd, causal(), 4);
        Tensor q = Tensors.random(rnd, DType.F32, 3, 4, 2, 16);
        Tensor k = Tensors.random(rnd, DType.F32, 3, 2, 20, 16);
        Tensor v = Tensors.random(rnd, DType.F32, 3, 2, 20, 16);
        Tensor host = Tensor.allocate(DType.F32, 3, 4, 2, 16);
        vulkan.forward(q, k, v, host, null, options);
        try (VulkanTensor dq = vulkan.upload(q);
                VulkanTensor dk = vulkan.upload(k);
                VulkanTensor dv = vulkan.upload(v);
                VulkanTensor out = vulkan.allocate(DType.BF16, 3, 4, 2, 16)) {
            vulkan.forward(dq, dk, dv, out, null, options);
            Tensor rounded = Tensor.allocate(DType.BF16, 3, 4, 2, 16);
            HostCopy.copy(host, rounded);
            assertArrayEquals(rounded.toFloatArray(), out.toHost().toFloatArray(), "device BF16 out");
        }

        int[] lens = {20, 0, 7};
        Tensor out = Tensor.allocate(DType.F32, 3, 4, 2, 16);
        Tensor lse = Tensor.allocate(DType.F32, 3, 4, 2, 1);
        vulkan.forwardCached(q, k, v, lens, out, lse, options);
        Tensor ref = Tensor.allocate(DType.F32, 3, 4, 2, 16);
        Tensor refLse = Tensor.allocate(DType.F32, 3, 4, 2, 1);
        reference.forwardCached(q, k, v, lens, ref, refLse, options);
        check(failures, "cached", out, lse, ref, refLse, q, k, options);

        int[][] tables = {{4, 0, 2, 1, 3}, {1}, {3, 2}};
        Tensor kPool = Tensors.random(rnd, DType.F32, 5, 2, 4, 16);
        Tensor vPool = Tensors.random(rnd, DType.F32, 5, 2, 4, 16);
        PagedKv cache = new PagedKv(kPool, vPool, tables, lens.clone());
        cache.contextLens()[2] = 6;
        vulkan.forwardPaged(q, cache, out, lse, options);
        reference.forwardPaged(q, cache, ref, refLse, options);
        check(failures, "paged", out, lse, ref, refLse, q, kPool, options);

        int[] cuQ = {0, 1, 1, 6};
        int[] cuK = {0, 9, 12, 12};
        Tensor pq = Tensors.random(rnd, DType.F32, 1, 4, 6, 16);
        Tensor pk = Tensors.random(rnd, DType.F32, 1, 2, 12, 16);
        Tensor pv = Tensors.random(rnd, DType.F32, 1, 2, 12, 16);
        Tensor pOut = Tensor.allocate(DType.F32, 1, 4, 6, 16);
        Tensor pLse = Tensor.allocate(DType.F32, 1, 4, 6, 1);
        dev.aule.spi.PackedSequences packed = new dev.aule.spi.PackedSequences(cuQ, cuK);
        vulkan.forwardVarlen(pq, pk, pv, packed, pOut, pLse, options);
        Tensor pRef = Tensor.allocate(DType.F32, 1, 4, 6, 16);
        Tensor pRefLse = Tensor.allocate(DType.F32, 1, 4, 6, 1);
        reference.forwardVarlen(pq, pk, pv, packed, pRef, pRefLse, options);
        check(failures, "packed", pOut, pLse, pRef, pRefLse, pq, pk, options);
        assertTrue(failures.isEmpty(), String.join("\n", failures));

        AttentionOptions wrong =
                AttentionOptions.builder().sinks(new float[] {1f, 2f}).build();
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> vulkan.forward(q, k, v, host, null, wrong));
        assertTrue(e.getMessage().startsWith("options.sinks: length 2"), e.getMessage());
    }

    @Test
    void theBackwardTakesTheLseThatCarriesTheSink() {
        SplittableRandom rnd = new SplittableRandom(603);
        int hq = 4;
        AttentionOptions options = withSinks(rnd, causal(), hq);
        Tensor q = Tensors.random(rnd, DType.F32, 1, hq, 24, 32);
        Tensor k = Tensors.random(rnd, DType.F32, 1, 2, 20, 32);
        Tensor v = Tensors.random(rnd, DType.F32, 1, 2, 20, 32);
        Tensor dOut = Tensors.random(rnd, DType.F32, 1, hq, 24, 32);
        Tensor out = Tensor.allocate(DType.F32, 1, hq, 24, 32);
        Tensor lse = Tensor.allocate(DType.F32, 1, hq, 24, 1);
        reference.forward(q, k, v, out, lse, options);
        BackwardInputs in = new BackwardInputs(q, k, v, out, dOut, lse);
        Gradients got = gradients(q, k, v);
        Gradients want = gradients(q, k, v);
        vulkan.backward(in, got, options);
        reference.backward(in, want, options);
        assertTrue(Accuracy.relativeError(got.dq(), want.dq()) < 1e-4, "dq");
        assertTrue(Accuracy.relativeError(got.dk(), want.dk()) < 1e-4, "dk");
        assertTrue(Accuracy.relativeError(got.dv(), want.dv()) < 1e-4, "dv");
    }

    private static Gradients gradients(Tensor q, Tensor k, Tensor v) {
        return new Gradients(
                Tensor.allocate(DType.F32, 1, q.heads(), q.seqLen(), q.headDim()),
                Tensor.allocate(DType.F32, 1, k.heads(), k.seqLen(), k.headDim()),
                Tensor.allocate(DType.F32, 1, v.heads(), v.seqLen(), v.headDim()));
    }

    private static AttentionOptions causal() {
        return AttentionOptions.builder().causal(true).build();
    }

    /** {@code base} with one sink per head, among them large ones (rows mostly sink) and negative ones. */
    private static AttentionOptions withSinks(SplittableRandom rnd, AttentionOptions base, int heads) {
        float[] sinks = new float[heads];
        for (int h = 0; h < heads; h++) {
            sinks[h] = h == 0 ? 8f : (float) (rnd.nextDouble() * 6 - 3);
        }
        return base.toBuilder().sinks(sinks).build();
    }

    private static void check(
            List<String> failures,
            String where,
            Tensor out,
            Tensor lse,
            Tensor ref,
            Tensor refLse,
            Tensor q,
            Tensor k,
            AttentionOptions options) {
        double outError = Accuracy.relativeError(out, ref);
        double lseError = Accuracy.relativeError(lse, refLse);
        double tolerance = Accuracy.forwardTolerance(DType.F32, q, k, options);
        if (!(outError < tolerance) || !(lseError < Accuracy.LSE_TOLERANCE)) {
            failures.add(where + ": out error " + outError + " (limit " + tolerance + "), lse error " + lseError);
        }
    }
}
