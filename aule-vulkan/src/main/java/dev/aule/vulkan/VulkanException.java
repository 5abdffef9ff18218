package dev.aule.vulkan;

/**
 * A Vulkan operation failed: a shader that does not compile, device memory that runs out, a lost
 * device. The call that throws it has freed what it allocated; the backend stays usable unless the
 * device itself was lost.
 */
public final class VulkanException extends IllegalStateException {
    private static final long serialVersionUID = 1L;

    /**
     * A failure without an underlying exception.
     *
     * @param message what failed and, where known, what to do about it
     */
    public VulkanException(String message) {
        super(message);
    }

    /**
     * A failure caused by another exception.
     *
     * @param message what failed
     * @param cause   the exception that made it fail
     */
    public VulkanException(String message, Throwable cause) {
        super(message, cause);
    }
}
