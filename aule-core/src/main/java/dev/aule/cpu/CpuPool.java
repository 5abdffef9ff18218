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
        String configured = System.getProperty(THREADS_PROPERTY);
        if (configured == null || configured.isBlank()) {
            return cores;
        }
        try {
            int threads = Integer.parseInt(configured.trim());
            if (threads >= 1) {
                return threads;
            }
        } catch (NumberFormatException ignored) {
            // fall through to the message below
        }
        throw new IllegalArgumentException(THREADS_PROPERTY + ": must be a positive integer, got '" + configured + "'");
    }
}
