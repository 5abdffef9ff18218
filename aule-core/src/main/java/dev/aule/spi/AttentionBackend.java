package dev.aule.spi;

import dev.aule.Attention;
import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.Gradients;
import dev.aule.Tensor;

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
                + " has no backward pass (its Capabilities.backward() is false)");
    }

    /**
     * Attention of q {@code [B, Hq, Sq, D]} against the first {@code cacheLens[b]} keys and values of batch
     * entry {@code b} of a cache ({@code kCache} {@code [B, Hkv, capacity, D]}): each sequence is its own
     * forward with {@code Sk = cacheLens[b]}, so with causal masking (bottom-right) the queries are the
     * sequence's last {@code Sq} positions, and prefill over a cached prefix and single-token decode are the
     * same call. See {@link ServingShapes#cached}.
     *
     * @throws UnsupportedOperationException when this backend has no serving entry points
     */
    default void forwardCached(Tensor q, Tensor kCache, Tensor vCache, int[] cacheLens, Tensor out, Tensor lse,
                               AttentionOptions options) {
        throw noServing("cached attention");
    }

    /**
     * Paged attention (the vLLM block-table layout): like {@link #forwardCached} with sequence {@code b}'s
     * {@code contextLens[b]} keys read through its block table. See {@link ServingShapes#paged} for the
     * shapes and rules.
     *
     * @throws UnsupportedOperationException when this backend has no serving entry points
     */
    default void forwardPaged(Tensor q, Tensor kCache, Tensor vCache, int[][] blockTables, int[] contextLens,
                                Tensor out, Tensor lse, AttentionOptions options) {
        throw noServing("paged attention");
    }

    /**
     * Packed variable-length attention: sequences back to back in q, k and v (batch 1), delimited by
     * {@code cuSeqlensQ} and {@code cuSeqlensK}; no row sees another sequence's keys and every option applies
     * per sequence. See {@link ServingShapes#varlen}.
     *
     * @throws UnsupportedOperationException when this backend has no serving entry points
     */
    default void forwardVarlen(Tensor q, Tensor k, Tensor v, int[] cuSeqlensQ, int[] cuSeqlensK, Tensor out,
                               Tensor lse, AttentionOptions options) {
        throw noServing("packed variable-length attention");
    }

    private UnsupportedOperationException noServing(String what) {
        return new UnsupportedOperationException("backend " + name() + " has no " + what
                + " (its Capabilities.serving() is false); unless a backend is forced, serving calls run on one"
                + " that has it");
    }
}
