package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.serving.KvCache;
import dev.aule.serving.KvFormat;
import dev.aule.serving.PagedKvCache;
import dev.aule.testing.Tensors;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Median time of one decode step through the caches (append one token to each sequence, then attention with one
 * query each), B=4, Hq=8, Hkv=2, D=64, F32, lengths {1000, 700, 300, 17} (each step truncated back), causal: a
 * {@link KvCache} allocated on the vulkan backend (one row per sequence uploaded per step), a host KvCache with
 * vulkan forced (the whole cache uploaded per step), a host KvCache on cpu; then the same three for a
 * {@link PagedKvCache} of 256 blocks of 16 tokens, whose sequences grow by one token a step (by at most 3 x (steps +
 * 20) over the three figures). A measuring tool for docs/PERFORMANCE.md, not a test. Optional argument:
 * steps per figure (default 100, after 20 warm-up steps).
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
     * @param args optional steps per figure
     */
    public static void main(String[] args) throws Throwable {
        int steps = args.length > 0 ? Integer.parseInt(args[0]) : 100;
        VulkanBackend vulkan = (VulkanBackend) Backends.get("vulkan");
        if (!vulkan.availability().available()) {
            System.out.println("UNAVAILABLE " + vulkan.availability().reason());
            return;
        }
        SplittableRandom rnd = new SplittableRandom(9);
        Tensor k = Tensors.random(rnd, DType.F32, B, HKV, 1000, D);
        Tensor v = Tensors.random(rnd, DType.F32, B, HKV, 1000, D);
        Tensor k1 = Tensors.random(rnd, DType.F32, B, HKV, 1, D);
        Tensor v1 = Tensors.random(rnd, DType.F32, B, HKV, 1, D);
        Tensor q = Tensors.random(rnd, DType.F32, B, HQ, 1, D);

        KvCache onDevice = KvCache.allocate(vulkan, KvFormat.F32, B, HKV, 1024, D, D);
        KvCache onHost = KvCache.allocate(KvFormat.F32, B, HKV, 1024, D, D);
        for (KvCache c : new KvCache[] {onDevice, onHost}) {
            c.append(k, v, LENS, null);
        }
        Runnable deviceStep = () -> contiguousStep(onDevice, k1, v1, q);
        Runnable hostStep = () -> contiguousStep(onHost, k1, v1, q);
        report("KvCache on vulkan (device copy)", steps, deviceStep, null);
        report("host KvCache, vulkan forced", steps, hostStep, "vulkan");
        report("host KvCache on cpu", steps, hostStep, "cpu");
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
        report("PagedKvCache on vulkan (device copy)", steps, () -> pagedStep(poolOnDevice, seqs, k1, v1, q), null);
        report("host PagedKvCache, vulkan forced", steps, () -> pagedStep(poolOnHost, seqs, k1, v1, q), "vulkan");
        report("host PagedKvCache on cpu", steps, () -> pagedStep(poolOnHost, seqs, k1, v1, q), "cpu");
        poolOnDevice.close();
    }

    private static void contiguousStep(KvCache cache, Tensor k1, Tensor v1, Tensor q) {
        cache.append(k1, v1);
        cache.attention(q, CAUSAL);
        for (int b = 0; b < B; b++) {
            cache.truncate(b, LENS[b]);
        }
    }

    private static void pagedStep(PagedKvCache pool, int[] seqs, Tensor k1, Tensor v1, Tensor q) {
        pool.append(seqs, k1, v1, null);
        pool.attention(seqs, q, CAUSAL); // a pool has no truncate: its sequences grow a token a step
    }

    private static void report(String what, int steps, Runnable step, String forced) throws Throwable {
        long[] nanos = new long[steps];
        VulkanTestSupport.withProperty(Backends.PROPERTY, forced, () -> {
            for (int i = 0; i < 20; i++) {
                step.run();
            }
            for (int i = 0; i < steps; i++) {
                long t0 = System.nanoTime();
                step.run();
                nanos[i] = System.nanoTime() - t0;
            }
        });
        Arrays.sort(nanos);
        System.out.printf("%-40s median %.2f ms a step%n", what, nanos[steps / 2] / 1e6);
    }
}
