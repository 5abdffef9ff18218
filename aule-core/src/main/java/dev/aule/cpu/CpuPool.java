package dev.aule.cpu;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;
import java.util.concurrent.ForkJoinWorkerThread;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntConsumer;

/**
 * The one pool every CPU call runs on, sized to the cores (or {@code -Daule.cpu.threads}).
 * Concurrent calls share it, so the machine is never oversubscribed however many threads call.
 */
final class CpuPool {
    static final String THREADS_PROPERTY = "aule.cpu.threads";

    private static final int THREADS = threadCount();
    private static final ForkJoinPool POOL = new ForkJoinPool(
            THREADS,
            pool -> {
                ForkJoinWorkerThread thread = ForkJoinPool.defaultForkJoinWorkerThreadFactory.newThread(pool);
                thread.setName("aule-cpu-" + thread.getPoolIndex());
                thread.setDaemon(true);
                return thread;
            },
            null,
            false);

    private CpuPool() {}

    static int threads() {
        return THREADS;
    }

    /**
     * The workers for a call of {@code flops} (an upper bound is fine): one, the caller's thread, below
     * {@link TileConfig#INLINE_MAX_FLOPS}, else {@code maxWorkers}.
     */
    static int workersFor(double flops, int maxWorkers) {
        return flops < TileConfig.INLINE_MAX_FLOPS ? 1 : maxWorkers;
    }

    /** {@code 2 (D + Dv)} FLOPs for every query and key pair of a call, masked or not: the most it can cost. */
    static double flopsBound(dev.aule.spi.AttentionShape shape) {
        return 2.0
                * shape.batch()
                * shape.queryHeads()
                * (shape.headDim() + shape.valueDim())
                * shape.queryLen()
                * (double) shape.keyLen();
    }

    /**
     * Runs {@code body} for every index in {@code [0, items)} with at most {@code maxWorkers}
     * workers taking indices in order from a shared counter (so callers put the costliest first).
     * One worker runs on the calling thread; exceptions propagate to the caller.
     */
    static void forEach(int items, int maxWorkers, IntConsumer body) {
        int workers = Math.min(Math.min(items, maxWorkers), THREADS);
        if (workers <= 1) {
            for (int i = 0; i < items; i++) {
                body.accept(i);
            }
            return;
        }
        AtomicInteger next = new AtomicInteger();
        Runnable worker = () -> {
            for (int i; (i = next.getAndIncrement()) < items; ) {
                try {
                    body.accept(i);
                } catch (RuntimeException | Error e) {
                    next.set(items); // the others stop taking work
                    throw e;
                }
            }
        };
        List<ForkJoinTask<?>> helpers = new ArrayList<>(workers - 1);
        boolean inPool = Thread.currentThread() instanceof ForkJoinWorkerThread t && t.getPool() == POOL;
        for (int w = 1; w < workers; w++) {
            ForkJoinTask<?> task = ForkJoinTask.adapt(worker);
            if (inPool) {
                task.fork();
            } else {
                POOL.execute(task);
            }
            helpers.add(task);
        }
        Throwable failure = null;
        try {
            worker.run();
        } catch (RuntimeException | Error e) {
            failure = e;
        }
        for (ForkJoinTask<?> task : helpers) {
            try {
                task.join();
            } catch (RuntimeException | Error e) {
                if (failure == null) {
                    failure = e;
                } else if (failure != e) {
                    failure.addSuppressed(e);
                }
            }
        }
        if (failure instanceof RuntimeException e) {
            throw e;
        }
        if (failure instanceof Error e) {
            throw e;
        }
    }

    private static int threadCount() {
        int cores = Runtime.getRuntime().availableProcessors();
        ThreadChoice choice = chooseThreads(System.getProperty(THREADS_PROPERTY), cores);
        if (choice.warning() != null) {
            System.getLogger("dev.aule.cpu").log(System.Logger.Level.WARNING, choice.warning());
        }
        return choice.threads();
    }

    /** The most threads {@value #THREADS_PROPERTY} may ask for: more only adds scheduling and memory. */
    static final int MAX_THREADS = 1024;

    /** A thread count and, when the configured value was refused, why (logged once; null otherwise). */
    record ThreadChoice(int threads, String warning) {}

    /**
     * The pool size for a configured {@value #THREADS_PROPERTY} value (null or blank: the cores). A bad value
     * never breaks the backend: it is reported and the cores are used.
     */
    static ThreadChoice chooseThreads(String configured, int cores) {
        if (configured == null || configured.isBlank()) {
            return new ThreadChoice(cores, null);
        }
        try {
            int threads = Integer.parseInt(configured.trim());
            if (threads >= 1 && threads <= MAX_THREADS) {
                return new ThreadChoice(threads, null);
            }
        } catch (NumberFormatException ignored) {
            // reported below
        }
        return new ThreadChoice(
                cores,
                THREADS_PROPERTY + " must be an integer in [1, " + MAX_THREADS + "], got '" + configured
                        + "': using the " + cores + " available processors");
    }
}
