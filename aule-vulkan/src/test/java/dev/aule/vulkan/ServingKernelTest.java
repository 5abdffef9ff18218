package dev.aule.vulkan;

import dev.aule.Attention;
import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.serving.KvCache;
import dev.aule.spi.Accuracy;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.Capabilities;
import dev.aule.spi.PagedKv;
import dev.aule.spi.ServingPredicates;
import dev.aule.testing.ForwardCase;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Cached and paged attention on the device against the float64 reference's own serving entry points: batches
 * whose entries have different lengths (0 and the capacity among them), GQA, decode (Sq 1) and prefill over a
 * cached prefix (Sq above 1, causal bottom-right per entry), every option (sinks: SinkLogitsTest), 16-bit and F32 storage,
 * each forward kernel forced in turn so every serving variant runs. Paged: shuffled block tables, block sizes
 * that do and do not divide the lengths, the vLLM BSHD pool layout. Host and device-tensor caches, the packed
 * backward, and bad input refused with the argument named and nothing written.
 */
class ServingKernelTest {
    private static final String[] KERNELS = {"decode", "decode-direct", "blocked", "forward"};

    private final VulkanBackend vulkan = VulkanTestSupport.backend();
    private final AttentionBackend reference = Backends.get("reference");

    @Test
    void cachedMatchesTheReferenceOnEveryKernel() throws Throwable {
        SplittableRandom rnd = new SplittableRandom(501);
        List<String> failures = new ArrayList<>();
        for (String kernel : KERNELS) {
            for (int n = 0; n < 3; n++) {
                int group = new int[] {1, 4, 2}[n];
                int kvHeads = n == 2 ? 2 : 1;
                // decode kernels need Sq * group <= 32; the tiled ones get prefill chunks too
                int sq = kernel.startsWith("decode") ? (n == 0 ? 1 : 1 + rnd.nextInt(4)) : 1 + rnd.nextInt(40);
                int capacity = new int[] {7, 300, 65}[n];
                int batch = 3 + rnd.nextInt(2);
                int[] lens = new int[batch];
                lens[0] = 0;
                lens[1] = capacity;
                for (int b = 2; b < batch; b++) {
                    lens[b] = rnd.nextInt(capacity + 1);
                }
                int d = n == 1 ? 64 : 32;
                int dv = n == 2 ? 16 : d;
                DType qType = n == 1 ? DType.BF16 : DType.F32;
                DType cacheType = new DType[] {DType.F32, DType.F16, DType.BF16}[n];
                DType outType = n == 2 ? DType.F16 : DType.F32;
                AttentionOptions options = n == 0
                        ? AttentionOptions.builder().causal(true).build()
                        : ForwardCase.randomOptions(rnd, kvHeads * group, capacity);
                String where = kernel + " B=" + batch + " Hkv=" + kvHeads + " group=" + group + " Sq=" + sq
                        + " lens=" + Arrays.toString(lens) + " D=" + d + "/" + dv + " " + qType + "/" + cacheType
                        + "/" + outType + " " + options;
                Tensor q = Tensors.random(rnd, qType, batch, kvHeads * group, sq, d);
                Tensor k = Tensors.random(rnd, cacheType, batch, kvHeads, capacity, d);
                Tensor v = Tensors.random(rnd, cacheType, batch, kvHeads, capacity, dv);
                Tensor out = nanFilled(outType, batch, kvHeads * group, sq, dv);
                Tensor lse = nanFilled(DType.F32, batch, kvHeads * group, sq, 1);
                VulkanTestSupport.withProperty(
                        AttentionKernels.KERNEL_PROPERTY,
                        kernel,
                        () -> vulkan.forwardCached(q, k, v, lens, out, lse, options));
                Tensor ref = Tensor.allocate(DType.F32, batch, kvHeads * group, sq, dv);
                Tensor refLse = Tensor.allocate(DType.F32, batch, kvHeads * group, sq, 1);
                reference.forwardCached(q, k, v, lens, ref, refLse, options);
                check(failures, where, out, lse, ref, refLse, Accuracy.forwardTolerance(outType, q, k, options));
            }
        }
        assertTrue(failures.isEmpty(), String.join("\n", failures));
    }

    @Test
    void rowIndicesAndLeftPadsMatchTheReference() throws Throwable {
        SplittableRandom rnd = new SplittableRandom(509);
        List<String> failures = new ArrayList<>();
        int rowsOfCache = 3;
        int capacity = 40;
        // Entry 3 reads row 0 again; pads 0, inside and equal to the length (no keys).
        int[] rows = {2, 0, 1, 0};
        int[] lens = {40, 17, 9, 30};
        int[] pads = {0, 5, 9, 12};
        for (String kernel : KERNELS) {
            int sq = kernel.startsWith("decode") ? 2 : 11;
            AttentionOptions options = kernel.equals("decode")
                    ? AttentionOptions.builder().causal(true).build()
                    : ForwardCase.randomOptions(rnd, 4, 28);
            Tensor q = Tensors.random(rnd, DType.F32, rows.length, 4, sq, 32);
            Tensor k = Tensors.random(rnd, DType.F16, rowsOfCache, 2, capacity, 32);
            Tensor v = Tensors.random(rnd, DType.F16, rowsOfCache, 2, capacity, 32);
            Tensor out = nanFilled(DType.F32, rows.length, 4, sq, 32);
            Tensor lse = nanFilled(DType.F32, rows.length, 4, sq, 1);
            dev.aule.spi.CacheIndex index = new dev.aule.spi.CacheIndex(lens, rows, pads);
            VulkanTestSupport.withProperty(
                    AttentionKernels.KERNEL_PROPERTY,
                    kernel,
                    () -> vulkan.forwardCached(q, k, v, index, out, lse, options));
            Tensor ref = Tensor.allocate(DType.F32, rows.length, 4, sq, 32);
            Tensor refLse = Tensor.allocate(DType.F32, rows.length, 4, sq, 1);
            reference.forwardCached(q, k, v, index, ref, refLse, options);
            check(
                    failures,
                    kernel + " Sq=" + sq + " " + options,
                    out,
                    lse,
                    ref,
                    refLse,
                    Accuracy.forwardTolerance(DType.F32, q, k, options));
            if (kernel.equals("blocked")) {
                try (VulkanTensor dq = vulkan.upload(q);
                        VulkanTensor dk = vulkan.upload(k);
                        VulkanTensor dv = vulkan.upload(v);
                        VulkanTensor dOut = vulkan.allocate(DType.F32, rows.length, 4, sq, 32)) {
                    VulkanTestSupport.withProperty(
                            AttentionKernels.KERNEL_PROPERTY,
                            kernel,
                            () -> vulkan.forwardCached(dq, dk, dv, index, dOut, null, options));
                    assertArrayEquals(out.toFloatArray(), dOut.toHost().toFloatArray(), "device-tensor caches");
                    IllegalArgumentException e = assertThrows(
                            IllegalArgumentException.class,
                            () -> vulkan.forwardCached(
                                    dq,
                                    dk,
                                    dv,
                                    new dev.aule.spi.CacheIndex(lens, new int[] {0, 3, 0, 0}, pads),
                                    dOut,
                                    null,
                                    options));
                    assertTrue(e.getMessage().startsWith("cacheBatchIdx[1]"), e.getMessage());
                    assertArrayEquals(out.toFloatArray(), dOut.toHost().toFloatArray(), "written by a refused call");
                }
            }
        }
        assertTrue(failures.isEmpty(), String.join("\n", failures));
    }

    @Test
    void pagedMatchesTheReferenceThroughShuffledTables() throws Throwable {
        SplittableRandom rnd = new SplittableRandom(502);
        List<String> failures = new ArrayList<>();
        int[] blockSizes = {1, 4, 5, 16};
        for (int n = 0; n < KERNELS.length; n++) {
            String kernel = KERNELS[n];
            int blockSize = blockSizes[n];
            int group = n % 2 == 0 ? 4 : 1;
            int kvHeads = 2;
            int sq = kernel.startsWith("decode") ? 1 + rnd.nextInt(2) : 1 + rnd.nextInt(20);
            int batch = 3;
            int maxBlocks = 60 / blockSize + 1;
            int numBlocks = batch * maxBlocks + 3;
            // A permutation of the pool: tables share no block, and ids are far from position order.
            List<Integer> ids = new ArrayList<>();
            for (int i = 0; i < numBlocks; i++) {
                ids.add(i);
            }
            java.util.Collections.shuffle(ids, new java.util.Random(rnd.nextLong()));
            int[][] tables = new int[batch][maxBlocks];
            for (int b = 0; b < batch; b++) {
                for (int i = 0; i < maxBlocks; i++) {
                    tables[b][i] = ids.get(b * maxBlocks + i);
                }
            }
            int[] lens = {maxBlocks * blockSize, 0, 1 + rnd.nextInt(maxBlocks * blockSize)};
            int d = 32;
            DType cacheType = n == 1 ? DType.F16 : DType.F32;
            boolean vllm = n >= 2;
            Tensor kPool = pool(rnd, cacheType, numBlocks, kvHeads, blockSize, d, vllm);
            Tensor vPool = pool(rnd, cacheType, numBlocks, kvHeads, blockSize, d, vllm);
            AttentionOptions options = n == 0
                    ? AttentionOptions.builder().causal(true).build()
                    : ForwardCase.randomOptions(rnd, kvHeads * group, maxBlocks * blockSize);
            String where = kernel + " blockSize=" + blockSize + " vllm=" + vllm + " group=" + group + " Sq=" + sq
                    + " lens=" + Arrays.toString(lens) + " " + cacheType + " " + options;
            Tensor q = Tensors.random(rnd, DType.F32, batch, kvHeads * group, sq, d);
            Tensor out = nanFilled(DType.F32, batch, kvHeads * group, sq, d);
            Tensor lse = nanFilled(DType.F32, batch, kvHeads * group, sq, 1);
            PagedKv cache = new PagedKv(kPool, vPool, tables, lens);
            VulkanTestSupport.withProperty(
                    AttentionKernels.KERNEL_PROPERTY, kernel, () -> vulkan.forwardPaged(q, cache, out, lse, options));
            Tensor ref = Tensor.allocate(DType.F32, batch, kvHeads * group, sq, d);
            Tensor refLse = Tensor.allocate(DType.F32, batch, kvHeads * group, sq, 1);
            reference.forwardPaged(q, cache, ref, refLse, options);
            check(failures, where, out, lse, ref, refLse, Accuracy.forwardTolerance(DType.F32, q, kPool, options));
        }
        assertTrue(failures.isEmpty(), String.join("\n", failures));
    }

    @Test
    void packedSequencesMatchTheReferenceWithEmptyOnes() throws Throwable {
        SplittableRandom rnd = new SplittableRandom(505);
        List<String> failures = new ArrayList<>();
        for (int n = 0; n < KERNELS.length; n++) {
            String kernel = KERNELS[n];
            boolean decode = kernel.startsWith("decode");
            int group = n % 2 == 0 ? 2 : 1;
            int kvHeads = 2;
            // Sequences: decode rows, an empty one, one with rows but no keys, prefill chunks over a prefix.
            int[] rows = {1, 0, decode ? 3 : 9, 1, decode ? 2 : 30, 0};
            int[] keys = {40, 7, 0, 1, decode ? 50 : 70, 0};
            int[] cuQ = new int[rows.length + 1];
            int[] cuK = new int[rows.length + 1];
            for (int i = 0; i < rows.length; i++) {
                cuQ[i + 1] = cuQ[i] + rows[i];
                cuK[i + 1] = cuK[i] + keys[i];
            }
            int d = n == 3 ? 48 : 32;
            DType type = n == 1 ? DType.F16 : DType.F32;
            AttentionOptions options = n == 0
                    ? AttentionOptions.builder().causal(true).build()
                    : ForwardCase.randomOptions(rnd, kvHeads * group, 70);
            String where = kernel + " rows=" + Arrays.toString(rows) + " keys=" + Arrays.toString(keys) + " group="
                    + group + " " + type + " " + options;
            Tensor q = Tensors.random(rnd, type, 1, kvHeads * group, cuQ[rows.length], d);
            Tensor k = Tensors.random(rnd, type, 1, kvHeads, cuK[rows.length], d);
            Tensor v = Tensors.random(rnd, type, 1, kvHeads, cuK[rows.length], d);
            Tensor out = nanFilled(DType.F32, 1, kvHeads * group, cuQ[rows.length], d);
            Tensor lse = nanFilled(DType.F32, 1, kvHeads * group, cuQ[rows.length], 1);
            dev.aule.spi.PackedSequences packed = new dev.aule.spi.PackedSequences(cuQ, cuK);
            VulkanTestSupport.withProperty(
                    AttentionKernels.KERNEL_PROPERTY,
                    kernel,
                    () -> vulkan.forwardVarlen(q, k, v, packed, out, lse, options));
            Tensor ref = Tensor.allocate(DType.F32, 1, kvHeads * group, cuQ[rows.length], d);
            Tensor refLse = Tensor.allocate(DType.F32, 1, kvHeads * group, cuQ[rows.length], 1);
            reference.forwardVarlen(q, k, v, packed, ref, refLse, options);
            check(failures, where, out, lse, ref, refLse, Accuracy.forwardTolerance(DType.F32, q, k, options));
        }
        assertTrue(failures.isEmpty(), String.join("\n", failures));
    }

    @Test
    void thePackedBackwardMatchesTheReferenceWithEmptySequences() {
        SplittableRandom rnd = new SplittableRandom(510);
        // rows and keys; one without keys, one without rows, one with neither, more rows than keys
        int[] rows = {5, 3, 0, 0, 9, 1};
        int[] keys = {7, 0, 4, 0, 6, 12};
        int[] cuQ = new int[rows.length + 1];
        int[] cuK = new int[rows.length + 1];
        for (int i = 0; i < rows.length; i++) {
            cuQ[i + 1] = cuQ[i] + rows[i];
            cuK[i + 1] = cuK[i] + keys[i];
        }
        AttentionOptions options =
                ForwardCase.randomOptions(rnd, 4, 12).toBuilder().causal(true).build();
        int totalQ = cuQ[rows.length];
        int totalK = cuK[rows.length];
        Tensor q = Tensors.random(rnd, DType.F32, 1, 4, totalQ, 32);
        Tensor k = Tensors.random(rnd, DType.F32, 1, 2, totalK, 32);
        Tensor v = Tensors.random(rnd, DType.F32, 1, 2, totalK, 32);
        Tensor dOut = Tensors.random(rnd, DType.F32, 1, 4, totalQ, 32);
        Tensor out = Tensor.allocate(DType.F32, 1, 4, totalQ, 32);
        Tensor lse = Tensor.allocate(DType.F32, 1, 4, totalQ, 1);
        dev.aule.spi.PackedSequences packed = new dev.aule.spi.PackedSequences(cuQ, cuK);
        reference.forwardVarlen(q, k, v, packed, out, lse, options);
        dev.aule.spi.BackwardInputs in = new dev.aule.spi.BackwardInputs(q, k, v, out, dOut, lse);
        dev.aule.Gradients got = new dev.aule.Gradients(
                nanFilled(DType.F32, 1, 4, totalQ, 32),
                nanFilled(DType.F32, 1, 2, totalK, 32),
                nanFilled(DType.F32, 1, 2, totalK, 32));
        dev.aule.Gradients want = new dev.aule.Gradients(
                Tensor.allocate(DType.F32, 1, 4, totalQ, 32),
                Tensor.allocate(DType.F32, 1, 2, totalK, 32),
                Tensor.allocate(DType.F32, 1, 2, totalK, 32));
        vulkan.backwardVarlen(in, packed, got, options);
        reference.backwardVarlen(in, packed, want, options);
        String where = " " + options;
        assertTrue(Accuracy.relativeError(got.dq(), want.dq()) < 1e-4, "dq" + where);
        assertTrue(Accuracy.relativeError(got.dk(), want.dk()) < 1e-4, "dk" + where);
        assertTrue(Accuracy.relativeError(got.dv(), want.dv()) < 1e-4, "dv" + where);

        Tensor before = copy(got.dq());
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class,
                () -> vulkan.backwardVarlen(
                        in,
                        new dev.aule.spi.PackedSequences(new int[] {0, totalQ + 1}, new int[] {0, totalK}),
                        got,
                        options));
        assertTrue(e.getMessage().startsWith("cuSeqlensQ"), e.getMessage());
        assertArrayEquals(before.toFloatArray(), got.dq().toFloatArray(), "written by a refused call");
    }

    @Test
    void packedRowsAgainstPagedCachesMatchTheReference() throws Throwable {
        SplittableRandom rnd = new SplittableRandom(506);
        List<String> failures = new ArrayList<>();
        for (String kernel : new String[] {"decode-direct", "blocked"}) {
            boolean decode = kernel.startsWith("decode");
            int kvHeads = 2;
            int group = 2;
            int blockSize = 4;
            // decode steps, an empty sequence, a chunk over a prefix, more rows than keys (causal: the first see none)
            int[] rows = {1, 0, decode ? 4 : 12, 1, decode ? 3 : 6};
            int[] lens = {9, 5, 30, 0, 2};
            int[] cuQ = new int[rows.length + 1];
            for (int i = 0; i < rows.length; i++) {
                cuQ[i + 1] = cuQ[i] + rows[i];
            }
            int perTable = 8;
            int numBlocks = rows.length * perTable;
            List<Integer> ids = new ArrayList<>();
            for (int i = 0; i < numBlocks; i++) {
                ids.add(i);
            }
            java.util.Collections.shuffle(ids, new java.util.Random(rnd.nextLong()));
            int[][] tables = new int[rows.length][perTable];
            for (int n = 0; n < rows.length; n++) {
                for (int i = 0; i < perTable; i++) {
                    tables[n][i] = ids.get(n * perTable + i);
                }
            }
            AttentionOptions options = decode
                    ? AttentionOptions.builder().causal(true).build()
                    : ForwardCase.randomOptions(rnd, kvHeads * group, 32);
            String where = kernel + " rows=" + Arrays.toString(rows) + " lens=" + Arrays.toString(lens) + " " + options;
            Tensor q = Tensors.random(rnd, DType.F32, 1, kvHeads * group, cuQ[rows.length], 32);
            Tensor kPool = Tensors.random(rnd, DType.BF16, numBlocks, kvHeads, blockSize, 32);
            Tensor vPool = Tensors.random(rnd, DType.BF16, numBlocks, kvHeads, blockSize, 32);
            Tensor out = nanFilled(DType.F32, 1, kvHeads * group, cuQ[rows.length], 32);
            Tensor lse = nanFilled(DType.F32, 1, kvHeads * group, cuQ[rows.length], 1);
            PagedKv cache = new PagedKv(kPool, vPool, tables, lens);
            VulkanTestSupport.withProperty(
                    AttentionKernels.KERNEL_PROPERTY,
                    kernel,
                    () -> vulkan.forwardVarlenPaged(q, cache, cuQ, out, lse, options));
            Tensor ref = Tensor.allocate(DType.F32, 1, kvHeads * group, cuQ[rows.length], 32);
            Tensor refLse = Tensor.allocate(DType.F32, 1, kvHeads * group, cuQ[rows.length], 1);
            reference.forwardVarlenPaged(q, cache, cuQ, ref, refLse, options);
            check(failures, where, out, lse, ref, refLse, Accuracy.forwardTolerance(DType.F32, q, kPool, options));
        }
        assertTrue(failures.isEmpty(), String.join("\n", failures));
    }

    @Test
    void deviceResidentCachesGiveTheHostCallsBits() {
        SplittableRandom rnd = new SplittableRandom(503);
        int batch = 4;
        int hkv = 2;
        int hq = 8;
        int capacity = 40;
        int d = 16;
        int[] lens = {capacity, 0, 17, 1};
        AttentionOptions options = AttentionOptions.builder().causal(true).build();
        Tensor q = Tensors.random(rnd, DType.F32, batch, hq, 2, d);
        Tensor k = Tensors.random(rnd, DType.F16, batch, hkv, capacity, d);
        Tensor v = Tensors.random(rnd, DType.F16, batch, hkv, capacity, d);
        Tensor hostOut = Tensor.allocate(DType.F32, batch, hq, 2, d);
        Tensor hostLse = Tensor.allocate(DType.F32, batch, hq, 2, 1);
        vulkan.forwardCached(q, k, v, lens, hostOut, hostLse, options);

        // Paged over the same keys: entry b's keys in blocks of 8, its table a reversed run of the pool.
        int blockSize = 8;
        int perEntry = capacity / blockSize;
        Tensor kPool = Tensor.allocate(DType.F16, batch * perEntry, hkv, blockSize, d);
        Tensor vPool = Tensor.allocate(DType.F16, batch * perEntry, hkv, blockSize, d);
        int[][] tables = new int[batch][perEntry];
        float[] row = new float[d];
        for (int b = 0; b < batch; b++) {
            for (int i = 0; i < perEntry; i++) {
                int block = (batch - 1 - b) * perEntry + (perEntry - 1 - i);
                tables[b][i] = block;
                for (int h = 0; h < hkv; h++) {
                    for (int s = 0; s < blockSize; s++) {
                        k.readRow(b, h, i * blockSize + s, row, 0);
                        kPool.writeRow(block, h, s, row, 0);
                        v.readRow(b, h, i * blockSize + s, row, 0);
                        vPool.writeRow(block, h, s, row, 0);
                    }
                }
            }
        }
        try (VulkanTensor dq = vulkan.upload(q);
                VulkanTensor dk = vulkan.upload(k);
                VulkanTensor dv = vulkan.upload(v);
                VulkanTensor dkPool = vulkan.upload(kPool);
                VulkanTensor dvPool = vulkan.upload(vPool);
                VulkanTensor out = vulkan.allocate(DType.F32, batch, hq, 2, d);
                VulkanTensor lse = vulkan.allocate(DType.F32, batch, hq, 2, 1);
                VulkanTensor out16 = vulkan.allocate(DType.BF16, batch, hq, 2, d)) {
            vulkan.forwardCached(dq, dk, dv, lens, out, lse, options);
            assertArrayEquals(hostOut.toFloatArray(), out.toHost().toFloatArray(), "cached out");
            assertArrayEquals(hostLse.toFloatArray(), lse.toHost().toFloatArray(), "cached lse");

            vulkan.forwardPaged(dq, dkPool, dvPool, tables, lens, out, lse, options);
            assertArrayEquals(hostOut.toFloatArray(), out.toHost().toFloatArray(), "paged out");
            assertArrayEquals(hostLse.toFloatArray(), lse.toHost().toFloatArray(), "paged lse");

            // A 16-bit output is the F32 result rounded on the device.
            vulkan.forwardCached(dq, dk, dv, lens, out16, null, options);
            Tensor rounded = Tensor.allocate(DType.BF16, batch, hq, 2, d);
            HostCopy.copy(hostOut, rounded);
            assertArrayEquals(rounded.toFloatArray(), out16.toHost().toFloatArray(), "cached BF16 out");
        }
    }

    @Test
    void anEntrysBitsAreTheSameAloneAndInABatch() {
        // Kernel choice and decode splits come from the capacity, never from the batch or the other lengths.
        SplittableRandom rnd = new SplittableRandom(508);
        int capacity = 600; // several decode splits
        int[] lens = {600, 3, 257, 0};
        AttentionOptions options = AttentionOptions.builder().causal(true).build();
        for (int sq : new int[] {1, 20}) {
            Tensor q = Tensors.random(rnd, DType.F32, lens.length, 4, sq, 32);
            Tensor k = Tensors.random(rnd, DType.F32, lens.length, 2, capacity, 32);
            Tensor v = Tensors.random(rnd, DType.F32, lens.length, 2, capacity, 32);
            Tensor out = Tensor.allocate(DType.F32, lens.length, 4, sq, 32);
            Tensor lse = Tensor.allocate(DType.F32, lens.length, 4, sq, 1);
            vulkan.forwardCached(q, k, v, lens, out, lse, options);
            for (int b = 0; b < lens.length; b++) {
                Tensor alone = Tensor.allocate(DType.F32, 1, 4, sq, 32);
                Tensor aloneLse = Tensor.allocate(DType.F32, 1, 4, sq, 1);
                vulkan.forwardCached(
                        copy(q.sequence(b, 0, sq)),
                        copy(k.sequence(b, 0, capacity)),
                        copy(v.sequence(b, 0, capacity)),
                        new int[] {lens[b]},
                        alone,
                        aloneLse,
                        options);
                assertArrayEquals(
                        copy(out.sequence(b, 0, sq)).toFloatArray(), alone.toFloatArray(), "Sq=" + sq + " entry " + b);
                assertArrayEquals(
                        copy(lse.sequence(b, 0, sq)).toFloatArray(), aloneLse.toFloatArray(), "lse, entry " + b);
            }
        }
    }

    private static Tensor copy(Tensor t) {
        Tensor c = Tensor.allocate(t.dtype(), t.batch(), t.heads(), t.seqLen(), t.headDim());
        HostCopy.copy(t, c);
        return c;
    }

    @Test
    void aDeviceCacheTakesEachStepsRowsInPlace() {
        decodeSteps(vulkan);
        // The discrete-GPU path: device-local buffers, rows through staging as one copy region per (entry, head).
        VulkanDevice unmapped = VulkanDevice.openUnmapped();
        try {
            decodeSteps(new VulkanBackend(unmapped));
        } finally {
            unmapped.close();
        }
    }

    /** Prefill of different lengths, then decode steps appending one row per entry, against the reference. */
    private void decodeSteps(VulkanBackend backend) {
        SplittableRandom rnd = new SplittableRandom(507);
        int batch = 3;
        int hkv = 2;
        int hq = 4;
        int capacity = 24;
        int d = 16;
        int[] lens = {5, 0, 12};
        Tensor hostK = Tensor.allocate(DType.F16, batch, hkv, capacity, d);
        Tensor hostV = Tensor.allocate(DType.F16, batch, hkv, capacity, d);
        AttentionOptions options = AttentionOptions.builder().causal(true).build();
        try (VulkanTensor k = backend.allocate(DType.F16, batch, hkv, capacity, d);
                VulkanTensor v = backend.allocate(DType.F16, batch, hkv, capacity, d);
                VulkanTensor q = backend.allocate(DType.F32, batch, hq, 1, d);
                VulkanTensor out = backend.allocate(DType.F32, batch, hq, 1, d)) {
            for (int b = 0; b < batch; b++) {
                if (lens[b] > 0) {
                    append(rnd, k, v, hostK, hostV, b, 0, lens[b]);
                }
            }
            IllegalArgumentException e = assertThrows(
                    IllegalArgumentException.class,
                    () -> k.uploadRows(Tensor.allocate(DType.F32, 1, hkv, 2, d), 0, capacity - 1));
            assertTrue(e.getMessage().startsWith("seqStart"), e.getMessage());
            for (int step = 0; step < 3; step++) {
                for (int b = 0; b < batch; b++) {
                    append(rnd, k, v, hostK, hostV, b, lens[b], 1);
                    lens[b]++;
                }
                Tensor hostQ = Tensors.random(rnd, DType.F32, batch, hq, 1, d);
                q.upload(hostQ);
                backend.forwardCached(q, k, v, lens, out, null, options);
                Tensor ref = Tensor.allocate(DType.F32, batch, hq, 1, d);
                reference.forwardCached(hostQ, hostK, hostV, lens, ref, null, options);
                double error = Accuracy.relativeError(out.toHost(), ref);
                assertTrue(
                        error < Accuracy.forwardTolerance(DType.F32, hostQ, hostK, options),
                        "step " + step + ": error " + error);
            }
            assertArrayEquals(hostK.toFloatArray(), k.toHost().toFloatArray(), "the rows written, and only those");
        }
    }

    private static void append(
            SplittableRandom rnd, VulkanTensor k, VulkanTensor v, Tensor hostK, Tensor hostV, int b, int start, int n) {
        Tensor newK = Tensors.random(rnd, DType.F32, 1, k.heads(), n, k.headDim());
        Tensor newV = Tensors.random(rnd, DType.F32, 1, v.heads(), n, v.headDim());
        k.uploadRows(newK, b, start);
        v.uploadRows(newV, b, start);
        HostCopy.copy(newK, hostK.sequence(b, start, n));
        HostCopy.copy(newV, hostV.sequence(b, start, n));
    }

    @Test
    void badLengthsAndTablesAreRefusedBeforeAnythingIsWritten() {
        SplittableRandom rnd = new SplittableRandom(504);
        int capacity = 8;
        Tensor q = Tensors.random(rnd, DType.F32, 2, 2, 1, 16);
        Tensor k = Tensors.random(rnd, DType.F32, 2, 1, capacity, 16);
        Tensor v = Tensors.random(rnd, DType.F32, 2, 1, capacity, 16);
        Tensor out = nanFilled(DType.F32, 2, 2, 1, 16);
        AttentionOptions plain = AttentionOptions.defaults();

        IllegalArgumentException over = assertThrows(
                IllegalArgumentException.class,
                () -> vulkan.forwardCached(q, k, v, new int[] {3, capacity + 1}, out, null, plain));
        assertTrue(over.getMessage().startsWith("cacheLens[1]"), over.getMessage());
        IllegalArgumentException negative = assertThrows(
                IllegalArgumentException.class,
                () -> vulkan.forwardCached(q, k, v, new int[] {-1, 2}, out, null, plain));
        assertTrue(negative.getMessage().startsWith("cacheLens[0]"), negative.getMessage());
        Tensor kPool = Tensors.random(rnd, DType.F32, 4, 1, 4, 16);
        Tensor vPool = Tensors.random(rnd, DType.F32, 4, 1, 4, 16);
        IllegalArgumentException block = assertThrows(
                IllegalArgumentException.class,
                () -> vulkan.forwardPaged(
                        q,
                        new PagedKv(kPool, vPool, new int[][] {{0, 1}, {2, 4}}, new int[] {8, 5}),
                        out,
                        null,
                        plain));
        assertTrue(block.getMessage().contains("blockTables[1][1]"), block.getMessage());
        IllegalArgumentException tooLong = assertThrows(
                IllegalArgumentException.class,
                () -> vulkan.forwardPaged(
                        q, new PagedKv(kPool, vPool, new int[][] {{0}, {2}}, new int[] {4, 5}), out, null, plain));
        assertTrue(tooLong.getMessage().contains("contextLens[1]"), tooLong.getMessage());
        assertTrue(allNaN(out), "out was written by a refused call");

        // Device tensors: the same rules, and the output left as it was.
        try (VulkanTensor dq = vulkan.upload(q);
                VulkanTensor dk = vulkan.upload(k);
                VulkanTensor dv = vulkan.upload(v);
                VulkanTensor dOut = vulkan.upload(out)) {
            IllegalArgumentException e = assertThrows(
                    IllegalArgumentException.class,
                    () -> vulkan.forwardCached(dq, dk, dv, new int[] {capacity + 1, 0}, dOut, null, plain));
            assertTrue(e.getMessage().startsWith("cacheLens[0]"), e.getMessage());
            IllegalArgumentException p = assertThrows(
                    IllegalArgumentException.class,
                    () -> vulkan.forwardPaged(
                            dq, dk, dv, new int[][] {{0}, {-1}}, new int[] {1, 1}, dOut, null, plain));
            assertTrue(p.getMessage().contains("blockTables[1][0]"), p.getMessage());
            assertTrue(allNaN(dOut.toHost()), "device out was written by a refused call");
        }
        // The device is still usable after the refusals.
        Tensor fine = Tensor.allocate(DType.F32, 2, 2, 1, 16);
        vulkan.forwardCached(q, k, v, new int[] {capacity, 1}, fine, null, plain);
        assertFalse(Float.isNaN(fine.toFloatArray()[0]));
    }

    @Test
    void servingIsAdvertisedAndCallsOnHostCachesStayOffTheDevice() throws Throwable {
        Capabilities caps = vulkan.capabilities();
        assertTrue(caps.serving() && caps.deviceMemory());
        Tensor q = Tensors.random(new SplittableRandom(505), DType.F32, 1, 2, 3, 16);
        AttentionOptions plain = AttentionOptions.builder().causal(true).build();
        // A host cache would be uploaded whole for every step: selection passes over vulkan for it.
        assertFalse(ServingPredicates.serving(q, 16, plain).test(caps));
        assertFalse(ServingPredicates.quantized(q, 16, plain).test(caps));
        VulkanTestSupport.withProperty(Backends.PROPERTY, null, () -> {
            assertEquals(
                    "cpu",
                    Backends.selected(ServingPredicates.serving(q, 16, plain)).name());
            assertEquals(
                    "cpu",
                    Backends.selected(ServingPredicates.quantized(q, 16, plain)).name());
        });
        // Packed calls bring their own keys, copied once as a dense forward's: vulkan takes those it runs.
        assertTrue(ServingPredicates.packed(q, 16, plain).test(caps));
        assertTrue(ServingPredicates.packedBackward(q, 16, plain).test(caps));
        AttentionOptions dropout = AttentionOptions.builder().dropout(0.1f, 3).build();
        AttentionOptions perBatch = AttentionOptions.builder()
                .alibiSlopesPerBatch(new float[][] {{0.5f, 0.25f}, {0.125f, 0.0625f}})
                .build();
        Tensor q512 = Tensors.random(new SplittableRandom(506), DType.F32, 1, 2, 3, 512);
        assertFalse(ServingPredicates.packed(q, 16, dropout).test(caps), "no DROPOUT");
        assertFalse(ServingPredicates.packed(q, 16, perBatch).test(caps), "no ALIBI_PER_BATCH");
        assertFalse(ServingPredicates.packed(q512, 512, plain).test(caps), "head dim over 256");
        assertFalse(ServingPredicates.packedBackward(q, 16, dropout).test(caps));
        // ... and the facade runs those elsewhere, with vulkan's kernel choice made unusable to show it is not asked.
        Tensor k = Tensors.random(new SplittableRandom(507), DType.F32, 1, 1, 5, 16);
        int[] cuQ = {0, 1, 3};
        int[] cuK = {0, 2, 5};
        VulkanTestSupport.withProperty(
                Backends.PROPERTY,
                null,
                () -> VulkanTestSupport.withProperty(AttentionKernels.KERNEL_PROPERTY, "none", () -> {
                    Attention.forwardVarlen(q, k, k, cuQ, cuK, perBatch);
                    Attention.backwardVarlen(q, k, k, q, q, Tensor.allocate(DType.F32, 1, 2, 3, 1), cuQ, cuK, dropout);
                }));
    }

    @Test
    void aForcedVulkanStillReachesTheDeviceEntryPoints() throws Throwable {
        // Under -Daule.backend=vulkan the facade and a host cache call vulkan itself: an unusable kernel choice
        // (-Daule.vulkan.kernel=none) is refused by vulkan alone, so each call below proves it got there.
        SplittableRandom rnd = new SplittableRandom(508);
        Tensor q = Tensors.random(rnd, DType.F32, 2, 2, 1, 16);
        Tensor k = Tensors.random(rnd, DType.F32, 2, 1, 6, 16);
        AttentionOptions plain = AttentionOptions.builder().causal(true).build();
        KvCache cache = KvCache.allocate(DType.F32, 2, 1, 6, 16);
        cache.append(Tensors.random(rnd, DType.F32, 2, 1, 4, 16), Tensors.random(rnd, DType.F32, 2, 1, 4, 16));
        Tensor packedQ = Tensors.random(rnd, DType.F32, 1, 2, 3, 16);
        Tensor packedK = Tensors.random(rnd, DType.F32, 1, 1, 5, 16);
        List<org.junit.jupiter.api.function.Executable> calls = List.of(
                () -> Attention.forwardCached(q, k, k, new int[] {6, 2}, plain),
                () -> Attention.forwardPaged(q, k, k, new int[][] {{0}, {1}}, new int[] {6, 3}, plain),
                () -> Attention.forwardVarlen(
                        packedQ, packedK, packedK, new int[] {0, 1, 3}, new int[] {0, 2, 5}, plain),
                () -> cache.attention(q, plain));
        VulkanTestSupport.withProperty(
                Backends.PROPERTY,
                "vulkan",
                () -> VulkanTestSupport.withProperty(AttentionKernels.KERNEL_PROPERTY, "none", () -> {
                    for (org.junit.jupiter.api.function.Executable call : calls) {
                        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
                        assertTrue(e.getMessage().startsWith("-D" + AttentionKernels.KERNEL_PROPERTY), e.getMessage());
                    }
                }));
    }

    private static Tensor pool(
            SplittableRandom rnd, DType dtype, int numBlocks, int heads, int blockSize, int d, boolean vllm) {
        if (!vllm) {
            return Tensors.random(rnd, dtype, numBlocks, heads, blockSize, d);
        }
        float[] data = new float[numBlocks * blockSize * heads * d];
        for (int i = 0; i < data.length; i++) {
            data[i] = (float) (rnd.nextDouble() * 2 - 1);
        }
        Tensor bshd = Tensor.ofBshd(data, numBlocks, blockSize, heads, d);
        if (dtype == DType.F32) {
            return bshd;
        }
        Tensor t = Tensor.allocate(dtype, numBlocks, heads, blockSize, d);
        HostCopy.copy(bshd, t);
        return t;
    }

    private static Tensor nanFilled(DType dtype, int b, int h, int s, int d) {
        Tensor t = Tensor.allocate(dtype, b, h, s, d);
        t.fill(Float.NaN);
        return t;
    }

    private static boolean allNaN(Tensor t) {
        for (float x : t.toFloatArray()) {
            if (!Float.isNaN(x)) {
                return false;
            }
        }
        return true;
    }

    private static void check(
            List<String> failures, String where, Tensor out, Tensor lse, Tensor ref, Tensor refLse, double tolerance) {
        double outError = Accuracy.relativeError(out, ref);
        double lseError = Accuracy.relativeError(lse, refLse);
        if (!(outError < tolerance) || !(lseError < Accuracy.LSE_TOLERANCE)) {
            failures.add(where + ": out error " + outError + " (limit " + tolerance + "), lse error " + lseError);
        }
    }
}
