package dev.aule.vulkan;

import java.util.ArrayDeque;
import java.util.Deque;

/**
 * The {@link SubmitContext}s of one device, lent to one submission at a time and reused by the next, so a call
 * creates no command pool, descriptor pool or fence. A pool rather than one context per thread: the number of
 * contexts follows the calls running at once, not the threads that ever called (a thread that dies holds
 * none), and at most {@link #MAX_IDLE} wait idle.
 */
final class ContextPool {
    /*
     * Invariants (maintainers):
     *  - Contexts are taken and given back only by Submission, under the device's use lock (read side); the
     *    device's close holds the write side when it calls close(), so every context then is idle here, was
     *    destroyed, or was leaked by a timed-out call (still possibly pending on the device: never destroyed).
     *  - A context given back had its submission waited for (or none made), so reset() on the next taker is
     *    legal.
     */

    /** Idle contexts kept for reuse; more calls at once than this create contexts destroyed on return. */
    static final int MAX_IDLE = 16;

    private final VulkanDevice device;
    private final Deque<SubmitContext> idle = new ArrayDeque<>(); // guarded by this
    private int created; // guarded by this
    private int destroyed; // guarded by this
    private int leaked; // guarded by this
    private boolean closed; // guarded by this

    ContextPool(VulkanDevice device) {
        this.device = device;
    }

    /** An idle context, or a new one (the most recently returned first: its memory is warm). */
    SubmitContext take() {
        synchronized (this) {
            if (closed) {
                throw new IllegalStateException("the device's contexts were destroyed");
            }
            SubmitContext c = idle.pollFirst();
            if (c != null) {
                return c;
            }
        }
        SubmitContext c = new SubmitContext(device);
        synchronized (this) {
            created++;
        }
        return c;
    }

    /** Takes back a context whose submission was waited for (or never submitted), to lend again. */
    void giveBack(SubmitContext c) {
        c.endStaging();
        synchronized (this) {
            if (!closed && idle.size() < MAX_IDLE) {
                idle.push(c);
                return;
            }
        }
        destroy(c);
    }

    /** Destroys a context that is not pending on the device. */
    void destroy(SubmitContext c) {
        c.destroy();
        synchronized (this) {
            destroyed++;
        }
    }

    /** Forgets a context whose submission may still be pending (a timed-out wait): never destroyed. */
    synchronized void leak(SubmitContext c) {
        leaked++;
    }

    /** Contexts made and neither destroyed nor leaked: idle here or lent out (tests). */
    synchronized int live() {
        return created - destroyed - leaked;
    }

    /** Contexts ever made (tests: reuse keeps this at the calls running at once). */
    synchronized int created() {
        return created;
    }

    /** Destroys every idle context; later {@link #take}s fail. Called by the device's close, under the write lock. */
    void close() {
        Deque<SubmitContext> all;
        synchronized (this) {
            closed = true;
            all = new ArrayDeque<>(idle);
            idle.clear();
        }
        for (SubmitContext c : all) {
            destroy(c);
        }
    }
}
