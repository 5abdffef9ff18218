package dev.aule.vulkan;

import java.util.ArrayDeque;
import java.util.Deque;

/**
 * Resources of one call, closed in reverse order however the call ends (faults free what they allocated);
 * those added with {@link #keepOnSuccess} are closed only when the call fails.
 */
final class Scope implements AutoCloseable {
    private final Deque<AutoCloseable> resources = new ArrayDeque<>();
    private final Deque<AutoCloseable> untilSuccess = new ArrayDeque<>();

    <T extends AutoCloseable> T add(T resource) {
        resources.push(resource);
        return resource;
    }

    /** A resource the call hands to its caller: closed with the scope only if {@link #succeeded()} was not called. */
    <T extends AutoCloseable> T keepOnSuccess(T resource) {
        untilSuccess.push(resource);
        return resource;
    }

    /** The call finished: the resources of {@link #keepOnSuccess} now belong to the caller. */
    void succeeded() {
        untilSuccess.clear();
    }

    /** Forgets every resource without closing it: the device may still use them (a timed-out wait). */
    void abandon() {
        resources.clear();
        untilSuccess.clear();
    }

    @Override
    public void close() {
        while (!untilSuccess.isEmpty()) {
            resources.push(untilSuccess.removeLast()); // closed first, newest first
        }
        RuntimeException first = null;
        while (!resources.isEmpty()) {
            try {
                resources.pop().close();
            } catch (Exception e) {
                if (first == null) {
                    first = e instanceof RuntimeException r ? r : new VulkanException("closing a resource", e);
                } else {
                    first.addSuppressed(e);
                }
            }
        }
        if (first != null) {
            throw first;
        }
    }
}
