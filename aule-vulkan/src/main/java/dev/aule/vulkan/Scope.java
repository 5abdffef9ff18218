package dev.aule.vulkan;

import java.util.ArrayDeque;
import java.util.Deque;

/** Resources of one call, closed in reverse order however the call ends (faults free what they allocated). */
final class Scope implements AutoCloseable {
    private final Deque<AutoCloseable> resources = new ArrayDeque<>();

    <T extends AutoCloseable> T add(T resource) {
        resources.push(resource);
        return resource;
    }

    /** Forgets every resource without closing it: the device may still use them (a timed-out wait). */
    void abandon() {
        resources.clear();
    }

    @Override
    public void close() {
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
