package dev.aule.spi;

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

    /**
     * Short, stable, lower-case name: {@code cpu}, {@code reference}, {@code vulkan}.
     *
     * @return the name
     */
    String name();

    /**
     * One line for people: what this backend is and runs on.
     *
     * @return the description
     */
    String description();

    /**
     * Auto-selection picks the available backend with the highest priority.
     *
     * @return the priority; higher wins
     */
    int priority();

    /**
     * Whether this backend can run here; cheap after the first call.
     *
     * @return whether it can run, and what it found or why not
     */
    Availability availability();

    /** {@return what this backend supports: head dims, dtypes, features} */
    Capabilities capabilities();

    /**
     * Writes attention of q against k and v into {@code out}, and each row's log-sum-exp into
     * {@code lse} when it is not null. See {@link AttentionShape#forward} for the shapes.
     *
     * @param q queries {@code [B, Hq, Sq, D]}
     * @param k keys {@code [B, Hkv, Sk, D]}
     * @param v values {@code [B, Hkv, Sk, Dv]}
     * @param out receives the output {@code [B, Hq, Sq, Dv]}
     * @param lse receives each row's log-sum-exp, F32 {@code [B, Hq, Sq, 1]}; null when not wanted
     * @param options masking, scale and the other options of the call
     * @throws IllegalArgumentException when any argument breaks a rule; nothing is written then
     */
    void forward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, AttentionOptions options);

    /**
     * Gradients of attention: writes {@code grads} from the forward's inputs, its output and LSE, and the
     * gradient of the output. See {@link AttentionShape#backward} for the shapes.
     *
     * @param in the forward's q, k, v, output and LSE, and the gradient of the output
     * @param grads receives the gradients with respect to q, k and v, each shaped like its input
     * @param options masking, scale and the other options of the call
     * @throws UnsupportedOperationException when {@link Capabilities#backward()} is false
     */
    default void backward(BackwardInputs in, Gradients grads, AttentionOptions options) {
        throw new UnsupportedOperationException(
                "backend " + name() + " has no backward pass (its Capabilities.backward() is false)");
    }

    /**
     * Attention of q {@code [B, Hq, Sq, D]} against the first {@code cacheLens[b]} keys and values of batch
     * entry {@code b} of a cache ({@code kCache} {@code [B, Hkv, capacity, D]}): each sequence is its own
     * forward with {@code Sk = cacheLens[b]}, so with causal masking (bottom-right) the queries are the
     * sequence's last {@code Sq} positions, and prefill over a cached prefix and single-token decode are the
     * same call. See {@link ServingShapes#cached}.
     *
     * @param q queries {@code [B, Hq, Sq, D]}
     * @param kCache the key cache {@code [B, Hkv, capacity, D]}
     * @param vCache the value cache {@code [B, Hkv, capacity, Dv]}
     * @param cacheLens cached tokens of each batch entry, {@code 0 <= cacheLens[b] <= capacity}
     * @param out receives the output {@code [B, Hq, Sq, Dv]}
     * @param lse receives each row's log-sum-exp, F32 {@code [B, Hq, Sq, 1]}; null when not wanted
     * @param options masking, scale and the other options of the call
     * @throws UnsupportedOperationException when this backend has no serving entry points
     */
    default void forwardCached(
            Tensor q, Tensor kCache, Tensor vCache, int[] cacheLens, Tensor out, Tensor lse, AttentionOptions options) {
        throw noServing("cached attention");
    }

    /**
     * Cached attention against chosen rows of the caches, with a left pad per sequence (FlashAttention's
     * {@code cache_batch_idx} and {@code cache_leftpad}): batch entry {@code b} of q attends keys
     * {@code [cacheLeftpad[b], cacheLens[b])} of row {@code cacheBatchIdx[b]} of {@code kCache}
     * {@code [Bc, Hkv, capacity, D]}, as its own forward over those keys (causal bottom-right against them,
     * window and ALiBi distances relative to them; the batch index of per-batch ALiBi is {@code b}). See
     * {@link ServingShapes#cached(Tensor, Tensor, Tensor, CacheIndex, Tensor, Tensor, AttentionOptions,
     * Capabilities)} for the rules.
     *
     * <p>The default runs a {@linkplain CacheIndex#isPlain plain} index through {@link #forwardCached(Tensor, Tensor,
     * Tensor, int[], Tensor, Tensor, AttentionOptions)} and refuses any other, so a backend without row indices
     * never computes against the wrong rows.
     *
     * @param q queries {@code [B, Hq, Sq, D]}
     * @param kCache the key cache {@code [Bc, Hkv, capacity, D]}
     * @param vCache the value cache {@code [Bc, Hkv, capacity, Dv]}
     * @param index each batch entry's row, first key and end in the caches
     * @param out receives the output {@code [B, Hq, Sq, Dv]}
     * @param lse receives each row's log-sum-exp, F32 {@code [B, Hq, Sq, 1]}; null when not wanted
     * @param options masking, scale and the other options of the call
     * @throws IllegalArgumentException when any argument breaks a rule; nothing is written then
     * @throws UnsupportedOperationException when this backend has no serving entry points, or no row indices and
     *     left pads and the index has them
     */
    default void forwardCached(
            Tensor q,
            Tensor kCache,
            Tensor vCache,
            CacheIndex index,
            Tensor out,
            Tensor lse,
            AttentionOptions options) {
        java.util.Objects.requireNonNull(index, "index");
        if (index.isPlain()) {
            forwardCached(q, kCache, vCache, index.cacheLens(), out, lse, options);
            return;
        }
        throw new UnsupportedOperationException("backend " + name() + " has no cached attention with cacheBatchIdx or"
                + " cacheLeftpad; use the cpu or reference backend");
    }

    /**
     * Paged attention (the vLLM block-table layout): like {@link #forwardCached} with sequence {@code b}'s
     * {@code cache.contextLens()[b]} keys read through its block table. See {@link ServingShapes#paged} for the
     * shapes and rules.
     *
     * @param q queries {@code [B, Hq, Sq, D]}
     * @param cache the block pools, each sequence's block table and its length
     * @param out receives the output {@code [B, Hq, Sq, Dv]}
     * @param lse receives each row's log-sum-exp, F32 {@code [B, Hq, Sq, 1]}; null when not wanted
     * @param options masking, scale and the other options of the call
     * @throws UnsupportedOperationException when this backend has no serving entry points
     */
    default void forwardPaged(Tensor q, PagedKv cache, Tensor out, Tensor lse, AttentionOptions options) {
        throw noServing("paged attention");
    }

    /**
     * Paged attention of packed variable-length queries (chunked prefill mixed with decode): sequence {@code s} is
     * rows {@code [cuSeqlensQ[s], cuSeqlensQ[s+1])} of q {@code [1, Hq, totalQ, D]} against its
     * {@code cache.contextLens()[s]} keys read through {@code cache.blockTables()[s]}, causal aligned bottom-right
     * per sequence (its rows are its last positions). See {@link ServingShapes#varlenPaged} for the rules.
     *
     * @param q query rows of every sequence {@code [1, Hq, totalQ, D]}
     * @param cache the block pools, each sequence's block table and its length
     * @param cuSeqlensQ where each sequence's query rows start, then the total ({@code n + 1} entries from 0)
     * @param out receives the output {@code [1, Hq, totalQ, Dv]}
     * @param lse receives each row's log-sum-exp, F32 {@code [1, Hq, totalQ, 1]}; null when not wanted
     * @param options masking, scale and the other options of the call
     * @throws UnsupportedOperationException when this backend has no such entry point
     */
    default void forwardVarlenPaged(
            Tensor q, PagedKv cache, int[] cuSeqlensQ, Tensor out, Tensor lse, AttentionOptions options) {
        throw noServing("paged variable-length attention");
    }

    /**
     * Packed variable-length attention: sequences back to back in q, k and v (batch 1), delimited by
     * {@code cuSeqlensQ} and {@code cuSeqlensK}; no row sees another sequence's keys and every option applies
     * per sequence. See {@link ServingShapes#varlen}.
     *
     * @param q query rows of every sequence {@code [1, Hq, totalQ, D]}
     * @param k keys of every sequence {@code [1, Hkv, totalK, D]}
     * @param v values of every sequence {@code [1, Hkv, totalK, Dv]}
     * @param packed where each sequence's query rows and keys start
     * @param out receives the output {@code [1, Hq, totalQ, Dv]}
     * @param lse receives each row's log-sum-exp, F32 {@code [1, Hq, totalQ, 1]}; null when not wanted
     * @param options masking, scale and the other options of the call
     * @throws UnsupportedOperationException when this backend has no serving entry points
     */
    default void forwardVarlen(
            Tensor q, Tensor k, Tensor v, PackedSequences packed, Tensor out, Tensor lse, AttentionOptions options) {
        throw noServing("packed variable-length attention");
    }

    /**
     * Gradients of packed variable-length attention ({@link #forwardVarlen}): every option applies per sequence as
     * in the forward, the batch index of dropout and per-batch ALiBi being the sequence's. See
     * {@link ServingShapes#varlenBackward} for the shapes and rules.
     *
     * @param in the forward's packed q, k, v, output and LSE, and the gradient of the output
     * @param packed where each sequence's query rows and keys start
     * @param grads receives the gradients with respect to q, k and v, each shaped like its input
     * @param options masking, scale and the other options of the call
     * @throws UnsupportedOperationException when this backend has no serving entry points or no backward
     */
    default void backwardVarlen(BackwardInputs in, PackedSequences packed, Gradients grads, AttentionOptions options) {
        throw new UnsupportedOperationException("backend " + name() + " has no packed variable-length backward (it"
                + " needs Capabilities.serving() and Capabilities.backward()); unless a backend is forced, such calls"
                + " run on one that has it");
    }

    /**
     * Attention against a quantized (INT8 or FP8) cache: like {@link #forwardPaged}, with sequence {@code b}'s
     * keys and values the dequantized codes ({@code decode(code) * scale}) of its blocks. See
     * {@link QuantizedShapes#quantized} for the rules.
     *
     * @param q queries {@code [B, Hq, Sq, D]}
     * @param cache the quantized pools, scales, block tables and lengths
     * @param out receives the output {@code [B, Hq, Sq, Dv]}
     * @param lse receives each row's log-sum-exp, F32 {@code [B, Hq, Sq, 1]}; null when not wanted
     * @param options masking, scale and the other options of the call
     * @throws UnsupportedOperationException when this backend has no {@link Capabilities.Feature#QUANTIZED_KV}
     */
    default void forwardQuantized(Tensor q, QuantizedKv cache, Tensor out, Tensor lse, AttentionOptions options) {
        throw new UnsupportedOperationException(
                "backend " + name() + " has no quantized-cache attention (its"
                        + " Capabilities.quantizedKv() is false); unless a backend is forced, such calls run on one that has it");
    }

    /**
     * Key/value storage in this backend's own memory for a serving cache ({@code KvCache.allocate} and
     * {@code PagedKvCache.create} with a backend): keys {@code [entries, Hkv, rows, D]}, values {@code [entries,
     * Hkv, rows, Dv]}, zeroed. The default, for backends that compute in host memory, is null: the cache then
     * holds host memory only.
     *
     * @param dtype F32, F16 or BF16
     * @param keyShape {@code [entries, Hkv, rows, D]}, every extent at least 1
     * @param valueShape {@code [entries, Hkv, rows, Dv]}
     * @return the storage, or null when this backend keeps caches in host memory
     * @throws IllegalArgumentException when the device cannot hold storage of these shapes
     */
    default DeviceKv allocateKv(dev.aule.DType dtype, long[] keyShape, long[] valueShape) {
        return null;
    }

    private UnsupportedOperationException noServing(String what) {
        return new UnsupportedOperationException("backend " + name() + " has no " + what
                + " (its Capabilities.serving() is false); unless a backend is forced, serving calls run on one"
                + " that has it");
    }
}
