package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.serving.KvCache;
import dev.aule.serving.KvFormat;
import dev.aule.serving.PagedKvCache;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.PagedKv;
import dev.aule.testing.Tensors;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Median time of one decode step through the caches (append one token to each sequence, then attention with one
 * query each), B=4, Hq=8, Hkv=2, D=64, F32, lengths {1000, 700, 300, 17} (each step truncated back), causal: a
 * {@link KvCache} allocated on the vulkan backend (one row per sequence uploaded per step), a host KvCache whose
 * attention runs on the same backend (the whole cache uploaded per step), a host KvCache on cpu; then the same
 * three for a {@link PagedKvCache} of 256 blocks of 16 tokens, whose sequences grow by one token a step. A
 * measuring tool for docs/PERFORMANCE.md, not a test. Optional arguments: steps per figure (default 100, after 20
 * warm-up steps), and {@code unmapped} (every kernel buffer device-local, as on a discrete GPU; see
 * {@link HostCallTimingMain}).
 */
public final class DeviceCacheTimingMain {
    private DeviceCacheTimingMain() {}

    private static final int B = 4;
    private static final int HQ = 8;
    private static final int HKV = 2;
    private static final int D = 64;
    private static final int[] LENS = {1000, 700, 300, 17};
    private static final AttentionOptions CAUSAL =
            AttentionOptions.builder().causal(true).build();

    /**
     * Prints one line per figure.
     *
     * @param args optional steps per figure, then optionally {@code unmapped}
     */
    public static void main(String[] args) {
        int steps = args.length > 0 ? Integer.parseInt(args[0]) : 100;
        VulkanBackend vulkan = args.length > 1 && args[1].equals("unmapped")
                ? new VulkanBackend(VulkanDevice.openUnmapped())
                : (VulkanBackend) Backends.get("vulkan");
        if (!vulkan.availability().available()) {
            System.out.println("UNAVAILABLE " + vulkan.availability().reason());
            return;
        }
        AttentionBackend cpu = Backends.get("cpu");
        SplittableRandom rnd = new SplittableRandom(9);
        Tensor k = Tensors.random(rnd, DType.F32, B, HKV, 1000, D);
        Tensor v = Tensors.random(rnd, DType.F32, B, HKV, 1000, D);
        Tensor k1 = Tensors.random(rnd, DType.F32, B, HKV, 1, D);
        Tensor v1 = Tensors.random(rnd, DType.F32, B, HKV, 1, D);
        Tensor q = Tensors.random(rnd, DType.F32, B, HQ, 1, D);
        Tensor out = Tensor.allocate(DType.F32, B, HQ, 1, D);
        Tensor lse = Tensor.allocate(DType.F32, B, HQ, 1, 1);

        KvCache onDevice = KvCache.allocate(vulkan, KvFormat.F32, B, HKV, 1024, D, D);
        Tensor hostK = Tensor.allocate(DType.F32, B, HKV, 1024, D);
        Tensor hostV = Tensor.allocate(DType.F32, B, HKV, 1024, D);
        KvCache onHost = KvCache.of(hostK, hostV);
        for (KvCache c : new KvCache[] {onDevice, onHost}) {
            c.append(k, v, LENS, null);
        }
        report("KvCache on vulkan (device copy)", steps, () -> {
            onDevice.append(k1, v1);
            onDevice.attentionInto(q, out, lse, CAUSAL);
            truncate(onDevice);
        });
        for (AttentionBackend backend : new AttentionBackend[] {vulkan, cpu}) {
            report("host KvCache, attention on " + backend.name(), steps, () -> {
                onHost.append(k1, v1);
                int[] lens = new int[B];
                Arrays.setAll(lens, onHost::length);
                backend.forwardCached(q, hostK, hostV, lens, out, lse, CAUSAL);
                truncate(onHost);
            });
        }
        onDevice.close();

        PagedKvCache poolOnDevice = PagedKvCache.create(vulkan, KvFormat.F32, 4 * 64, 16, HKV, D, D);
        PagedKvCache poolOnHost = PagedKvCache.create(KvFormat.F32, 4 * 64, 16, HKV, D, D);
        int[] seqs = new int[B];
        for (PagedKvCache p : new PagedKvCache[] {poolOnDevice, poolOnHost}) {
            for (int b = 0; b < B; b++) {
                seqs[b] = p.newSequence();
                p.append(seqs[b], k.sequence(b, 0, LENS[b]), v.sequence(b, 0, LENS[b]));
            }
        }
        report("PagedKvCache on vulkan (device copy)", steps, () -> {
            poolOnDevice.append(seqs, k1, v1, null);
            poolOnDevice.attentionInto(seqs, q, out, lse, CAUSAL);
        });
        for (AttentionBackend backend : new AttentionBackend[] {vulkan, cpu}) {
            report("host PagedKvCache, attention on " + backend.name(), steps, () -> {
                poolOnHost.append(seqs, k1, v1, null);
                int[][] tables = new int[B][];
                int[] lens = new int[B];
                for (int b = 0; b < B; b++) {
                    tables[b] = poolOnHost.blockTable(seqs[b]);
                    lens[b] = poolOnHost.length(seqs[b]);
                }
                PagedKv pool = new PagedKv(poolOnHost.keyBlocks(), poolOnHost.valueBlocks(), tables, lens);
                backend.forwardPaged(q, pool, out, lse, CAUSAL);
            });
        }
        poolOnDevice.close();
    }

    private static void truncate(KvCache cache) {
        for (int b = 0; b < B; b++) {
            cache.truncate(b, LENS[b]);
        }
    }

    private static void report(String what, int steps, Runnable step) {
        long[] nanos = new long[steps];
        for (int i = 0; i < 20; i++) {
            step.run();
        }
        for (int i = 0; i < steps; i++) {
            long t0 = System.nanoTime();
            step.run();
            nanos[i] = System.nanoTime() - t0;
        }
        Arrays.sort(nanos);
        System.out.printf("%-40s median %.2f ms a step%n", what, nanos[steps / 2] / 1e6);
    }
}
