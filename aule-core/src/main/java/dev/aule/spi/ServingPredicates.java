package dev.aule.spi;

import dev.aule.AttentionOptions;
import dev.aule.Tensor;

import java.util.function.Predicate;

/**
 * What a serving call needs of a backend beyond {@link Capabilities#serving()}: its head dims within the backend's
 * limit, q's dtype, and dropout, per-batch ALiBi and sink logits only where the backend has them. Selection of a
 * serving call ({@link dev.aule.Backends#selected(Predicate)}) tests these, so a call one backend cannot run goes to
 * one that can (for example a head dim of 512, or per-batch slopes, from {@code vulkan} to {@code cpu}) instead of
 * failing there. Missing arguments pass, so that the chosen backend's validation names them.
 */
public final class ServingPredicates {
    private ServingPredicates() {}

    /**
     * Whether a backend with {@code caps} runs a serving call of q against values of {@code valueDim} with
     * {@code options}, {@link Capabilities#serving()} aside (a device cache's own backend answers its calls
     * without being selected).
     *
     * @param caps the backend's capabilities
     * @param q the call's queries, or null
     * @param valueDim the value rows' elements {@code Dv}; 0 when unknown
     * @param options the call's options, or null
     * @return true when nothing of the call is outside {@code caps}
     */
    public static boolean runs(Capabilities caps, Tensor q, int valueDim, AttentionOptions options) {
        if (q != null
                && (caps.maxHeadDim() < Math.max(q.headDim(), valueDim)
                        || !caps.dtypes().contains(q.dtype()))) {
            return false;
        }
        return options == null
                || ((caps.dropout() || !options.hasDropout())
                        && (caps.alibiPerBatch() || options.alibiBatches() == 0)
                        && (caps.sinks() || !options.hasSinks()));
    }

    /**
     * The selection predicate of a cached or paged call on host-memory caches ({@code KvCache}, {@code
     * PagedKvCache} allocated without a backend, or host tensors passed as caches): {@link Capabilities#serving()},
     * not {@link Capabilities#deviceMemory()} (a device backend would copy the whole cache for every step, where a
     * host backend reads it in place), and {@link #runs}. A forced backend is taken as is ({@link
     * dev.aule.Backends#selected(Predicate)}).
     *
     * @param q the call's queries, or null
     * @param valueDim the value rows' elements {@code Dv}; 0 when unknown
     * @param options the call's options, or null
     * @return the predicate
     */
    public static Predicate<Capabilities> serving(Tensor q, int valueDim, AttentionOptions options) {
        return caps -> caps.serving() && !caps.deviceMemory() && runs(caps, q, valueDim, options);
    }

    /**
     * The selection predicate of a packed call ({@code forwardVarlen}): {@link Capabilities#serving()} and {@link
     * #runs}. Its keys and values are the call's own, copied once as a dense forward's are, so a device backend is
     * not passed over.
     *
     * @param q the call's queries, or null
     * @param valueDim the value rows' elements {@code Dv}; 0 when unknown
     * @param options the call's options, or null
     * @return the predicate
     */
    public static Predicate<Capabilities> packed(Tensor q, int valueDim, AttentionOptions options) {
        return caps -> caps.serving() && runs(caps, q, valueDim, options);
    }

    /**
     * The selection predicate of a packed backward ({@code backwardVarlen}): {@link #packed} and {@link
     * Capabilities#backward()}.
     *
     * @param q the call's queries, or null
     * @param valueDim the value rows' elements {@code Dv}; 0 when unknown
     * @param options the call's options, or null
     * @return the predicate
     */
    public static Predicate<Capabilities> packedBackward(Tensor q, int valueDim, AttentionOptions options) {
        return caps -> caps.backward() && packed(q, valueDim, options).test(caps);
    }

    /**
     * The selection predicate of attention on a host-memory quantized cache: {@link Capabilities#quantizedKv()},
     * not {@link Capabilities#deviceMemory()} (as {@link #serving}), and {@link #runs}.
     *
     * @param q the call's queries, or null
     * @param valueDim the value rows' elements {@code Dv}; 0 when unknown
     * @param options the call's options, or null
     * @return the predicate
     */
    public static Predicate<Capabilities> quantized(Tensor q, int valueDim, AttentionOptions options) {
        return caps -> caps.quantizedKv() && !caps.deviceMemory() && runs(caps, q, valueDim, options);
    }
}
