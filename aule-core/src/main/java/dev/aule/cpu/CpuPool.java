package dev.aule.cpu;

import dev.aule.cpu.workers.WorkerTeam;

import java.util.function.IntConsumer;

/**
 * The CPU backend's view of the library's one team of threads ({@link WorkerTeam#shared()}, sized to the cores or
 * {@code -Daule.cpu.threads}): concurrent calls share it, so the machine is never oversubscribed however many
 * threads call.
 */
final class CpuPool {
    private CpuPool() {}

    static int threads() {
        return WorkerTeam.shared().threads();
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
     * Runs {@code body} for every index in {@code [0, items)} with at most {@code maxWorkers} workers taking
     * indices in order from a shared counter (so callers put the costliest first), as {@link WorkerTeam#forEach}.
     * One worker runs on the calling thread; exceptions propagate to the caller.
     */
    static void forEach(int items, int maxWorkers, IntConsumer body) {
        WorkerTeam.shared().forEach(items, maxWorkers, body);
    }
}
