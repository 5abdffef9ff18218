package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.AttentionResult;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.serving.KvCache;
import dev.aule.serving.KvCacheFullException;
import dev.aule.serving.KvFormat;
import dev.aule.serving.PagedKvCache;
import dev.aule.serving.Rope;
import dev.aule.serving.StreamingPolicy;
import dev.aule.spi.Accuracy;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * KvCache and PagedKvCache with their keys and values on the device: built by appends with RoPE over several steps,
 * forks, copy-on-write, frees and block reuse, each attention against the float64 reference on a host cache built
 * by the same calls; the device reading its own copy (the host pool overwritten afterwards changes nothing); bad
 * input and full caches writing nothing; quantized formats refused; calls the device cannot run (per-batch ALiBi,
 * a head dim over its limit) answered on the host copy.
 */
class DeviceKvCacheTest {
    private final VulkanBackend vulkan = VulkanTestSupport.backend();

    @Test
    void contiguousCacheAppendsWithRopeLikeAHostCache() throws Throwable {
        SplittableRandom rnd = new SplittableRandom(811);
        for (KvFormat format : new KvFormat[] {KvFormat.F32, KvFormat.F16}) {
            int batch = 2;
            int kvHeads = 2;
            int heads = 4;
            int d = 16;
            int dv = format == KvFormat.F32 ? 16 : 8;
            int capacity = 20;
            Rope rope = Rope.of(d, 64, 10000, Rope.Style.NEOX);
            KvCache device = KvCache.allocate(vulkan, format, batch, kvHeads, capacity, d, dv);
            KvCache host = KvCache.allocate(format, batch, kvHeads, capacity, d, dv);
            assertEquals("vulkan", device.deviceBackend());
            assertEquals(host.bytes(), device.deviceBytes());
            AttentionOptions options = AttentionOptions.builder().causal(true).build();
            int[][] steps = {{5, 3}, {1, 1}, {2, 0}, {1, 1}};
            for (int[] counts : steps) {
                int n = Math.max(counts[0], counts[1]);
                Tensor k = Tensors.random(rnd, DType.F32, batch, kvHeads, n, d);
                Tensor v = Tensors.random(rnd, DType.F32, batch, kvHeads, n, dv);
                device.append(k, v, counts, rope);
                host.append(k, v, counts, rope);
                Tensor q = Tensors.random(rnd, DType.F32, batch, heads, 1, d);
                String where = format + " after " + Arrays.toString(counts);
                AttentionResult got = device.attention(q, options, rope);
                AttentionResult want = onReference(() -> host.attention(q, options, rope));
                check(where, got, want, Accuracy.forwardTolerance(DType.F32, q, q, options));
                // through row indices: sequence 1 twice, then 0
                Tensor q3 = Tensors.random(rnd, DType.F32, 3, heads, 1, d);
                int[] rows = {1, 1, 0};
                check(
                        where + " rows",
                        device.attention(rows, q3, options),
                        onReference(() -> host.attention(rows, q3, options)),
                        Accuracy.forwardTolerance(DType.F32, q, q, options));
            }
            device.close();
            assertNull(device.deviceBackend());
            device.close(); // idempotent; the cache goes on on its host storage
            Tensor q = Tensors.random(rnd, DType.F32, batch, heads, 1, d);
            check(
                    format + " closed",
                    device.attention(q, options),
                    onReference(() -> host.attention(q, options)),
                    Accuracy.forwardTolerance(DType.F32, q, q, options));
        }
    }

    @Test
    void pagedCacheForksCopiesOnWriteFreesAndReusesBlocksOnTheDevice() throws Throwable {
        SplittableRandom rnd = new SplittableRandom(812);
        int d = 16;
        int heads = 2;
        Rope rope = Rope.of(d, 64, 10000, Rope.Style.GPTJ);
        PagedKvCache device = PagedKvCache.create(vulkan, KvFormat.F32, 4, 4, 1, d, d);
        PagedKvCache host = PagedKvCache.create(KvFormat.F32, 4, 4, 1, d, d);
        Both both = new Both(device, host, rnd, d, rope);
        int a = both.newSequence();
        both.append(a, 6);
        int b = both.fork(a);
        assertEquals(device.blockTable(a)[1], device.blockTable(b)[1], "the fork shares the partial block");
        both.append(b, 1); // copy-on-write of the shared partial block
        both.append(a, 1); // a's block is its own again: written in place
        assertTrue(device.blockTable(a)[1] != device.blockTable(b)[1]);
        AttentionOptions options = AttentionOptions.builder().causal(true).build();
        both.check("after fork", new int[] {a, b}, heads, options);
        int[] freed = device.blockTable(a);
        both.free(a);
        int c = both.newSequence();
        both.append(c, 5); // two blocks of the two free: one of them is a's
        assertTrue(
                Arrays.stream(device.blockTable(c))
                        .anyMatch(x -> Arrays.stream(freed).anyMatch(y -> y == x)),
                "c reuses a block a freed: " + Arrays.toString(device.blockTable(c)));
        AttentionOptions windowed =
                AttentionOptions.builder().causal(true).window(3, 0).build();
        both.check("after reuse", new int[] {b, c}, heads, windowed);
        // The device reads its own copy: overwriting the host pool changes nothing it computes.
        Tensor q = Tensors.random(rnd, DType.F32, 2, heads, 1, d);
        AttentionResult before = device.attention(new int[] {b, c}, q, options);
        device.keyBlocks().fill(Float.NaN);
        device.valueBlocks().fill(Float.NaN);
        AttentionResult after = device.attention(new int[] {b, c}, q, options);
        assertArrayEquals(floats(before.out()), floats(after.out()));
        assertArrayEquals(floats(before.lse()), floats(after.lse()));
        device.close();
    }

    @Test
    void streamingCachesMoveAndDropRowsOnTheDeviceToo() throws Throwable {
        SplittableRandom rnd = new SplittableRandom(815);
        int d = 8;
        Rope rope = Rope.of(d, 64, 10000, Rope.Style.NEOX);
        StreamingPolicy policy = new StreamingPolicy(2, 4);
        KvCache device = KvCache.allocate(vulkan, KvFormat.F32, 1, 1, 6, d, d);
        KvCache host = KvCache.allocate(KvFormat.F32, 1, 1, 6, d, d);
        device.enableStreaming(policy);
        host.enableStreaming(policy);
        PagedKvCache devicePool = PagedKvCache.create(vulkan, KvFormat.F32, 6, 2, 1, d, d);
        PagedKvCache hostPool = PagedKvCache.create(KvFormat.F32, 6, 2, 1, d, d);
        int seq = devicePool.newSequence(policy);
        assertEquals(seq, hostPool.newSequence(policy));
        AttentionOptions options = AttentionOptions.builder().causal(true).build();
        for (int n : new int[] {3, 2, 1, 4, 1, 1}) { // past the window: rows move (contiguous) and blocks go (paged)
            Tensor k = Tensors.random(rnd, DType.F32, 1, 1, n, d);
            Tensor v = Tensors.random(rnd, DType.F32, 1, 1, n, d);
            device.append(k, v, null, rope);
            host.append(k, v, null, rope);
            devicePool.append(seq, k, v, rope);
            hostPool.append(seq, k, v, rope);
            Tensor q = Tensors.random(rnd, DType.F32, 1, 2, 1, d);
            double tolerance = Accuracy.forwardTolerance(DType.F32, q, q, options);
            check(
                    "contiguous after " + n,
                    device.attention(q, options, rope),
                    onReference(() -> host.attention(q, options, rope)),
                    tolerance);
            int[] seqs = {seq};
            check(
                    "paged after " + n,
                    devicePool.attention(seqs, q, options, rope),
                    onReference(() -> hostPool.attention(seqs, q, options, rope)),
                    tolerance);
        }
        device.close();
        devicePool.close();
    }

    @Test
    void badInputAndFullCachesWriteNothing() throws Throwable {
        SplittableRandom rnd = new SplittableRandom(813);
        int d = 8;
        KvCache device = KvCache.allocate(vulkan, KvFormat.F32, 1, 1, 8, d, d);
        KvCache host = KvCache.allocate(KvFormat.F32, 1, 1, 8, d, d);
        Tensor k = Tensors.random(rnd, DType.F32, 1, 1, 6, d);
        Tensor v = Tensors.random(rnd, DType.F32, 1, 1, 6, d);
        device.append(k, v);
        host.append(k, v);
        Tensor k3 = Tensors.random(rnd, DType.F32, 1, 1, 3, d);
        assertThrows(KvCacheFullException.class, () -> device.append(k3, k3));
        Tensor wide = Tensors.random(rnd, DType.F32, 1, 1, 1, d + 1);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> device.append(wide, wide));
        assertTrue(e.getMessage().startsWith("k"), e.getMessage());
        assertEquals(6, device.length(0));
        Tensor q = Tensors.random(rnd, DType.F32, 1, 2, 2, d);
        AttentionOptions options = AttentionOptions.builder().causal(true).build();
        check(
                "after refusals",
                device.attention(q, options),
                onReference(() -> host.attention(q, options)),
                Accuracy.forwardTolerance(DType.F32, q, q, options));
        device.close();

        PagedKvCache pool = PagedKvCache.create(vulkan, KvFormat.BF16, 2, 4, 1, d, d);
        int s = pool.newSequence();
        Tensor k9 = Tensors.random(rnd, DType.F32, 1, 1, 9, d);
        assertThrows(KvCacheFullException.class, () -> pool.append(s, k9, k9));
        assertEquals(0, pool.length(s));
        assertEquals(0, pool.usage().usedBlocks());
        pool.close();

        for (KvFormat quantized : new KvFormat[] {KvFormat.INT8, KvFormat.FP8_E4M3}) {
            IllegalArgumentException q8 = assertThrows(
                    IllegalArgumentException.class, () -> KvCache.allocate(vulkan, quantized, 1, 1, 8, d, d));
            assertTrue(q8.getMessage().startsWith("format: ") && q8.getMessage().contains("host memory"));
            assertThrows(IllegalArgumentException.class, () -> PagedKvCache.create(vulkan, quantized, 2, 4, 1, d, d));
        }
    }

    @Test
    void callsTheDeviceCannotRunAreAnsweredOnTheHostCopy() throws Throwable {
        SplittableRandom rnd = new SplittableRandom(814);
        // per-batch ALiBi (vulkan has no ALIBI_PER_BATCH) and a head dim over its 256
        for (int d : new int[] {16, VulkanBackend.MAX_HEAD_DIM + 32}) {
            KvCache device = KvCache.allocate(vulkan, KvFormat.F32, 2, 1, 6, d, d);
            KvCache host = KvCache.allocate(KvFormat.F32, 2, 1, 6, d, d);
            Tensor k = Tensors.random(rnd, DType.F32, 2, 1, 5, d);
            Tensor v = Tensors.random(rnd, DType.F32, 2, 1, 5, d);
            device.append(k, v, new int[] {5, 4}, null);
            host.append(k, v, new int[] {5, 4}, null);
            AttentionOptions options = d == 16
                    ? AttentionOptions.builder()
                            .causal(true)
                            .alibiSlopesPerBatch(new float[][] {{0.5f, 0.25f}, {0.125f, 1f}})
                            .build()
                    : AttentionOptions.builder().causal(true).build();
            Tensor q = Tensors.random(rnd, DType.F32, 2, 2, 1, d);
            check(
                    "D=" + d,
                    device.attention(q, options),
                    onReference(() -> host.attention(q, options)),
                    Accuracy.forwardTolerance(DType.F32, q, q, options));
            device.close();
        }
    }

    /** A device pool and a host pool driven by the same calls with the same random rows. */
    private record Both(PagedKvCache device, PagedKvCache host, SplittableRandom rnd, int d, Rope rope) {
        int newSequence() {
            int id = device.newSequence();
            assertEquals(id, host.newSequence());
            return id;
        }

        int fork(int parent) {
            int id = device.fork(parent);
            assertEquals(id, host.fork(parent));
            return id;
        }

        void free(int seq) {
            device.free(seq);
            host.free(seq);
        }

        void append(int seq, int n) {
            Tensor k = Tensors.random(rnd, DType.F32, 1, 1, n, d);
            Tensor v = Tensors.random(rnd, DType.F32, 1, 1, n, d);
            device.append(seq, k, v, rope);
            host.append(seq, k, v, rope);
            assertArrayEquals(host.blockTable(seq), device.blockTable(seq));
        }

        void check(String where, int[] seqs, int heads, AttentionOptions options) throws Throwable {
            Tensor q = Tensors.random(rnd, DType.F32, seqs.length, heads, 2, d);
            DeviceKvCacheTest.check(
                    where,
                    device.attention(seqs, q, options, rope),
                    onReference(() -> host.attention(seqs, q, options, rope)),
                    Accuracy.forwardTolerance(DType.F32, q, q, options));
        }
    }

    private static AttentionResult onReference(Supplier<AttentionResult> call) throws Throwable {
        AttentionResult[] result = new AttentionResult[1];
        VulkanTestSupport.withProperty(Backends.PROPERTY, "reference", () -> result[0] = call.get());
        return result[0];
    }

    private static void check(String where, AttentionResult got, AttentionResult want, double tolerance) {
        double outError = Accuracy.relativeError(got.out(), want.out());
        double lseError = Accuracy.relativeError(got.lse(), want.lse());
        assertTrue(
                outError < tolerance && lseError < Accuracy.LSE_TOLERANCE,
                where + ": out error " + outError + " (limit " + tolerance + "), lse error " + lseError);
    }

    private static float[] floats(Tensor t) {
        float[] all = new float[(int) t.elementCount()];
        float[] row = new float[t.headDim()];
        int at = 0;
        for (int b = 0; b < t.batch(); b++) {
            for (int h = 0; h < t.heads(); h++) {
                for (int s = 0; s < t.seqLen(); s++) {
                    t.readRow(b, h, s, row, 0);
                    System.arraycopy(row, 0, all, at, row.length);
                    at += row.length;
                }
            }
        }
        return all;
    }
}
