package dev.aule;

/**
 * A place attention runs: found with {@link java.util.ServiceLoader}, chosen through {@link Backends}.
 *
 * <p>Implementations validate with {@link AttentionShape#forward} before touching memory, are safe
 * to call from many threads at once, and keep no per-call state between calls. A backend
 * that cannot run here (no device, no driver) still loads and says why in {@link #availability()}.
 */
public interface AttentionBackend {

    /** Short, stable, lower-case name: {@code cpu}, {@code reference}, {@code vulkan}. */
    String name();

    /** One line for people: what this backend is and runs on. */
    String description();

    /** Auto-selection picks the available backend with the highest priority. */
    int priority();

    /** Whether this backend can run here; cheap after the first call. */
    Availability availability();

    Capabilities capabilities();

    /**
     * Writes attention of q against k and v into {@code out}, and each row's log-sum-exp into
     * {@code lse} when it is not null. See {@link AttentionShape#forward} for the shapes.
     *
     * @throws IllegalArgumentException when any argument breaks a rule; nothing is written then
     */
    void forward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, AttentionOptions options);

    /**
     * Gradients of attention: writes {@code dq}, {@code dk}, {@code dv} from the forward's inputs, its
     * output and LSE, and the gradient of the output.
     *
     * @throws UnsupportedOperationException when {@link Capabilities#backward()} is false
     */
    default void backward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor dOut, Tensor lse,
                          Tensor dq, Tensor dk, Tensor dv, AttentionOptions options) {
        throw new UnsupportedOperationException("backend " + name()
                + " has no backward pass yet: gradients arrive with the training issue");
    }
}
