package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.testing.Tensors;

import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;

/**
 * Calls {@code System.exit(args[0])} while three threads keep the Vulkan device busy (device-tensor forwards,
 * downloads, uploads, host-tensor forwards, tensors closed and reallocated), for {@link ShutdownTest}: the
 * process must end with that code, never with a crash. Prints {@code EXITING} just before the exit.
 */
public final class ExitWhileCallsRunMain {
    private ExitWhileCallsRunMain() {}

    /**
     * Runs the workload and exits.
     *
     * @param args the exit code
     * @throws InterruptedException never in practice
     */
    public static void main(String[] args) throws InterruptedException {
        int code = Integer.parseInt(args[0]);
        VulkanBackend vulkan = (VulkanBackend) Backends.get("vulkan");
        if (!vulkan.availability().available()) {
            System.out.println("UNAVAILABLE " + vulkan.availability().reason());
            System.exit(99);
        }
        int threads = 3;
        CountDownLatch warm = new CountDownLatch(threads);
        for (int w = 0; w < threads; w++) {
            SplittableRandom rnd = new SplittableRandom(w);
            Thread.ofPlatform().start(() -> work(vulkan, rnd, warm));
        }
        warm.await(); // every thread finished a round: the pipelines are built, the next calls are running
        System.out.println("EXITING");
        System.out.flush();
        System.exit(code);
    }

    private static void work(VulkanBackend vulkan, SplittableRandom rnd, CountDownLatch warm) {
        Tensor q = Tensors.random(rnd, DType.F32, 1, 4, 128, 64);
        Tensor out = Tensor.allocate(DType.F32, 1, 4, 128, 64);
        AttentionOptions options = AttentionOptions.defaults();
        try {
            while (true) {
                VulkanTensor qd = vulkan.upload(q);
                VulkanTensor od = vulkan.allocate(DType.BF16, 1, 4, 128, 64);
                vulkan.forward(qd, qd, qd, od, null, options);
                od.download(out);
                qd.upload(out);
                vulkan.forward(q, q, q, out, null, options);
                od.close(); // qd stays open: the shutdown frees it
                warm.countDown();
            }
        } catch (VulkanException e) {
            // the device was closed by the shutdown: the documented end of calls at exit
        }
    }
}
