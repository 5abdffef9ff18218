package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.Accuracy;
import dev.aule.spi.AttentionBackend;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Queue;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The documented lifetime of {@link VulkanTensor}: closing waits for the calls using a tensor, calls after
 * close throw {@link IllegalStateException} naming the tensor, and nothing a caller does with close crashes
 * the JVM (the driver frees nothing under a running call).
 */
class TensorLifetimeTest {
    private static final int D = 16;
    private static final int SEQ = 24;

    private final VulkanBackend vulkan = VulkanTestSupport.backend();
    private final AttentionBackend reference = Backends.get("reference");

    /**
     * Rounds of three threads running forward, download and upload on shared tensors while a fourth closes
     * them at random moments: no crash, only the documented exception, and every tensor freed at the end.
     */
    @Test
    void closingTensorsWhileOtherThreadsUseThemIsSafe() throws Exception {
        int liveBefore = vulkan.device().liveTensors();
        Queue<Throwable> unexpected = new ConcurrentLinkedQueue<>();
        SplittableRandom seeds = new SplittableRandom(11);
        for (int round = 0; round < 10; round++) {
            List<VulkanTensor> tensors = new ArrayList<>();
            for (int i = 0; i < 4; i++) {
                tensors.add(vulkan.upload(Tensors.random(seeds.split(), DType.F32, 1, 2, SEQ, D)));
            }
            tensors.add(vulkan.allocate(DType.BF16, 1, 2, SEQ, D));
            tensors.add(vulkan.allocate(DType.F32, 1, 2, SEQ, 1));
            AtomicBoolean allClosed = new AtomicBoolean();
            CountDownLatch started = new CountDownLatch(3);
            List<Thread> threads = new ArrayList<>();
            for (int w = 0; w < 3; w++) {
                SplittableRandom rnd = seeds.split();
                threads.add(Thread.ofPlatform().start(() -> {
                    started.countDown();
                    // Keeps going until every tensor was closed, and one more pass after that.
                    boolean last = false;
                    while (!last) {
                        last = allClosed.get();
                        try {
                            useOnce(rnd, tensors);
                        } catch (IllegalStateException e) {
                            if (!e.getMessage().contains("VulkanTensor[")
                                    || !e.getMessage().contains("was closed")) {
                                unexpected.add(e);
                            }
                        } catch (Throwable t) {
                            unexpected.add(t);
                        }
                    }
                }));
            }
            SplittableRandom closer = seeds.split();
            started.await();
            List<VulkanTensor> order = new ArrayList<>(tensors);
            Collections.shuffle(order, new java.util.Random(closer.nextLong()));
            for (VulkanTensor t : order) {
                Thread.sleep(closer.nextInt(4)); // lands anywhere in a call: validation, lease, kernels, copy
                t.close();
            }
            allClosed.set(true);
            for (Thread t : threads) {
                t.join();
            }
            for (VulkanTensor t : tensors) {
                assertTrue(t.isFreed(), t + " freed once closed");
            }
        }
        assertEquals(List.of(), List.copyOf(unexpected), "only IllegalStateException naming a closed tensor");
        assertEquals(liveBefore, vulkan.device().liveTensors(), "every closed tensor left the device");
        assertUsable();
    }

    /** One random use: a forward (F32 or BF16 out, with or without lse), a download or an upload. */
    private void useOnce(SplittableRandom rnd, List<VulkanTensor> t) {
        switch (rnd.nextInt(4)) {
            case 0 -> vulkan.forward(t.get(0), t.get(1), t.get(2), t.get(3), t.get(5), AttentionOptions.defaults());
            case 1 ->
                vulkan.forward(
                        t.get(1),
                        t.get(2),
                        t.get(0),
                        t.get(4),
                        null,
                        AttentionOptions.builder().causal(true).build());
            case 2 -> t.get(rnd.nextInt(t.size())).toHost();
            default -> t.get(rnd.nextInt(4)).upload(Tensors.random(rnd, DType.F32, 1, 2, SEQ, D));
        }
    }

    /** close() waits for the use in progress: the buffer is not freed under a lease, and is freed after it. */
    @Test
    void closeWaitsForTheUseInProgressAndRefusesNewOnes() throws Exception {
        VulkanTensor t = vulkan.allocate(DType.F32, 1, 1, 4, 8);
        VulkanTensor.Lease lease = vulkan.device().whileUsable(() -> t.use("q"));
        Thread closer = Thread.ofPlatform().start(t::close);
        while (!t.isClosed()) {
            Thread.onSpinWait();
        }
        IllegalStateException e = assertThrows(IllegalStateException.class, t::toHost);
        assertTrue(e.getMessage().startsWith("VulkanTensor[F32 [1, 1, 4, 8]] was closed"), e.getMessage());
        assertFalse(t.isFreed(), "freed under a lease");
        lease.close();
        closer.join();
        assertTrue(t.isFreed());
        t.close(); // idempotent
    }

    /** Use after close names the argument and the tensor, and writes nothing. */
    @Test
    void aClosedArgumentIsNamed() {
        try (VulkanTensor q = vulkan.allocate(DType.F32, 1, 1, 4, 8);
                VulkanTensor out = vulkan.upload(Tensors.random(new SplittableRandom(3), DType.F32, 1, 1, 4, 8))) {
            VulkanTensor k = vulkan.allocate(DType.F16, 1, 1, 4, 8);
            k.close();
            Tensor before = out.toHost();
            IllegalStateException e = assertThrows(
                    IllegalStateException.class, () -> vulkan.forward(q, k, q, out, null, AttentionOptions.defaults()));
            assertTrue(e.getMessage().startsWith("k: VulkanTensor[F16 [1, 1, 4, 8]] was closed"), e.getMessage());
            assertEquals(0.0, Accuracy.relativeError(out.toHost(), before), "out was written");
            assertThrows(IllegalStateException.class, () -> k.upload(Tensor.allocate(DType.F32, 1, 1, 4, 8)));
            assertThrows(IllegalStateException.class, () -> k.download(Tensor.allocate(DType.F32, 1, 1, 4, 8)));
        }
    }

    private void assertUsable() {
        SplittableRandom rnd = new SplittableRandom(5);
        Tensor q = Tensors.random(rnd, DType.F32, 1, 2, SEQ, D);
        Tensor ref = Tensor.allocate(DType.F32, 1, 2, SEQ, D);
        reference.forward(q, q, q, ref, null, AttentionOptions.defaults());
        try (VulkanTensor qd = vulkan.upload(q);
                VulkanTensor out = vulkan.allocate(DType.F32, 1, 2, SEQ, D)) {
            vulkan.forward(qd, qd, qd, out, null, AttentionOptions.defaults());
            double error = Accuracy.relativeError(out.toHost(), ref);
            assertTrue(error < 1e-5, "error " + error);
        }
    }
}
