package dev.aule;

import dev.aule.serving.Rope;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.AttentionShape;
import dev.aule.spi.BackwardInputs;
import dev.aule.spi.CacheIndex;
import dev.aule.spi.Capabilities;
import dev.aule.spi.PackedSequences;
import dev.aule.spi.PagedKv;
import dev.aule.spi.ServingPredicates;
import dev.aule.spi.ServingShapes;

import java.util.List;
import java.util.function.Predicate;

/**
 * Attention through the {@linkplain Backends#selected() selected backend}, or, when that backend cannot
 * run a call (a head dim over its limit, masks, gradients, the serving entry points) and none is forced,
 * through the best available one that can ({@link Backends#selected(Predicate)}). Shapes are
 * {@code [batch, heads, seq, headDim]}; k and v may have fewer heads than q (GQA/MQA) and v its
 * own head dim. The output has q's dtype.
 */
public final class Attention {
    private Attention() {}

    /**
     * Attention output {@code [B, Hq, Sq, Dv]}.
     *
     * @param q queries {@code [B, Hq, Sq, D]}
     * @param k keys {@code [B, Hkv, Sk, D]}
     * @param v values {@code [B, Hkv, Sk, Dv]}
     * @param options masking, scale and the other options of the call
     * @return the output, in q's dtype
     */
    public static Tensor forward(Tensor q, Tensor k, Tensor v, AttentionOptions options) {
        AttentionBackend backend = Backends.selected(canForward(q, k, v, options));
        Tensor out = allocateOut(q, k, v, options, backend);
        backend.forward(q, k, v, out, null, options);
        return out;
    }

    /**
     * Attention output and each row's log-sum-exp (F32 {@code [B, Hq, Sq, 1]}).
     *
     * @param q queries {@code [B, Hq, Sq, D]}
     * @param k keys {@code [B, Hkv, Sk, D]}
     * @param v values {@code [B, Hkv, Sk, Dv]}
     * @param options masking, scale and the other options of the call
     * @return the output, in q's dtype, and the LSE
     */
    public static AttentionResult forwardWithLse(Tensor q, Tensor k, Tensor v, AttentionOptions options) {
        AttentionBackend backend = Backends.selected(canForward(q, k, v, options));
        Tensor out = allocateOut(q, k, v, options, backend);
        Tensor lse = Tensor.allocate(DType.F32, q.batch(), q.heads(), q.seqLen(), 1);
        backend.forward(q, k, v, out, lse, options);
        return new AttentionResult(out, lse);
    }

    /**
     * Writes attention into caller-owned {@code out} (and {@code lse} when not null), so a loop can
     * reuse its buffers.
     *
     * @param q queries {@code [B, Hq, Sq, D]}
     * @param k keys {@code [B, Hkv, Sk, D]}
     * @param v values {@code [B, Hkv, Sk, Dv]}
     * @param out receives the output {@code [B, Hq, Sq, Dv]}
     * @param lse receives each row's log-sum-exp, F32 {@code [B, Hq, Sq, 1]}; null when not wanted
     * @param options masking, scale and the other options of the call
     */
    public static void forwardInto(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, AttentionOptions options) {
        Backends.selected(canForward(q, k, v, options)).forward(q, k, v, out, lse, options);
    }

    /**
     * Gradients of q, k and v, each in the dtype of its input.
     *
     * @param q queries {@code [B, Hq, Sq, D]}
     * @param k keys {@code [B, Hkv, Sk, D]}
     * @param v values {@code [B, Hkv, Sk, Dv]}
     * @param out the forward output {@code [B, Hq, Sq, Dv]}
     * @param dOut the gradient of the loss with respect to {@code out}, shaped like it
     * @param lse the forward's log-sum-exp, F32 {@code [B, Hq, Sq, 1]}
     * @param options masking, scale and the other options of the call
     * @return the gradients of q, k and v
     */
    public static Gradients backward(
            Tensor q, Tensor k, Tensor v, Tensor out, Tensor dOut, Tensor lse, AttentionOptions options) {
        AttentionBackend backend = Backends.selected(
                canForward(q, k, v, options).and(Capabilities::backward).and(caps -> caps.runsMasks(options, true)));
        if (!backend.capabilities().backward()) {
            throw new UnsupportedOperationException("backend " + backend.name()
                    + " has no backward pass (its Capabilities.backward() is false), and no available backend has one");
        }
        AttentionShape.ofInputs(q, k, v, options, backend.capabilities());
        Gradients grads = new Gradients(
                Tensor.allocate(q.dtype(), q.batch(), q.heads(), q.seqLen(), q.headDim()),
                Tensor.allocate(k.dtype(), k.batch(), k.heads(), k.seqLen(), k.headDim()),
                Tensor.allocate(v.dtype(), v.batch(), v.heads(), v.seqLen(), v.headDim()));
        backend.backward(new BackwardInputs(q, k, v, out, dOut, lse), grads, options);
        return grads;
    }

    /**
     * The gradient of the loss with respect to the sink logits ({@link AttentionOptions.Builder#sinks(float[])}) of
     * a forward with sinks: {@code dSink_h = -sum_{b, i} exp(sink_h - lse_{b,h,i}) D_{b,h,i}} with
     * {@code D = rowsum(dOut * out)}. The gradients of q, k and v need nothing more: {@link #backward} and
     * {@link #backwardVarlen} take the forward's LSE, which includes the sink term. Works for any entry point's
     * output (dense, cached, paged, packed): every row of {@code out} counts once. Computed in float64 on the
     * calling thread.
     *
     * @param out the forward's output {@code [B, Hq, S, Dv]}
     * @param dOut the gradient of the loss with respect to {@code out}, shaped like it
     * @param lse the forward's log-sum-exp, F32 {@code [B, Hq, S, 1]}, the sink included
     * @param options the forward's options; its sinks must be set, one per query head
     * @return one gradient per query head
     * @throws IllegalArgumentException when the options have no sinks, their count is not {@code Hq}, or the shapes
     *     disagree
     */
    public static float[] sinkGradients(Tensor out, Tensor dOut, Tensor lse, AttentionOptions options) {
        return SinkGradients.of(out, dOut, lse, options);
    }

    /**
     * Attention of q {@code [B, Hq, Sq, D]} against the first {@code cacheLens[b]} keys and values of batch
     * entry {@code b} of contiguous caches {@code kCache}, {@code vCache} ({@code [B, Hkv, capacity, D]}), on
     * the best available backend with serving entry points that computes in host memory (the caches are host
     * tensors, which a device backend would copy whole; {@link ServingPredicates#serving}): each sequence is its own
     * forward with
     * {@code Sk = cacheLens[b]}, so under causal masking (bottom-right) the queries are the sequence's last
     * {@code Sq} positions. {@link dev.aule.serving.KvCache#attention} is this call on the cache's own
     * tensors and lengths. Lengths are checked before any read ({@link ServingShapes#cached}).
     *
     * @param q queries {@code [B, Hq, Sq, D]}
     * @param kCache the key cache {@code [B, Hkv, capacity, D]}
     * @param vCache the value cache {@code [B, Hkv, capacity, Dv]}
     * @param cacheLens cached tokens of each batch entry, {@code 0 <= cacheLens[b] <= capacity}
     * @param options masking, scale and the other options of the call
     * @return the output, in q's dtype, and the LSE
     */
    public static AttentionResult forwardCached(
            Tensor q, Tensor kCache, Tensor vCache, int[] cacheLens, AttentionOptions options) {
        AttentionResult result = allocateResult(q, vCache);
        Backends.selected(ServingPredicates.serving(q, vCache == null ? 0 : vCache.headDim(), options))
                .forwardCached(q, kCache, vCache, cacheLens, result.out(), result.lse(), options);
        return result;
    }

    /**
     * Cached attention against chosen rows of the caches, with a left pad per sequence (FlashAttention's
     * {@code flash_attn_with_kvcache} with {@code cache_batch_idx} and {@code cache_leftpad}): batch entry {@code b}
     * of q attends keys {@code [cacheLeftpad[b], cacheLens[b])} of row {@code cacheBatchIdx[b]} of {@code kCache}
     * {@code [Bc, Hkv, capacity, D]}; {@code Bc} may differ from q's batch and rows may repeat. Each entry is its own
     * forward over its visible keys: causal masking is aligned bottom-right against them, and window and ALiBi
     * distances count from the pad. A null {@code cacheBatchIdx} is the identity, a null {@code cacheLeftpad} no
     * pad. Every index, pad and length is validated on a copy before any read ({@link ServingShapes#cacheIndex}).
     *
     * @param q queries {@code [B, Hq, Sq, D]}
     * @param kCache the key cache {@code [Bc, Hkv, capacity, D]}
     * @param vCache the value cache {@code [Bc, Hkv, capacity, Dv]}
     * @param index each batch entry's end, row and first key in the caches
     * @param options masking, scale and the other options of the call
     * @return the output, in q's dtype, and the LSE
     */
    public static AttentionResult forwardCached(
            Tensor q, Tensor kCache, Tensor vCache, CacheIndex index, AttentionOptions options) {
        return forwardCached(q, kCache, vCache, index, options, null);
    }

    /**
     * {@link #forwardCached(Tensor, Tensor, Tensor, CacheIndex, AttentionOptions)} with q rotated by {@code rope}
     * inside the call (FlashAttention's {@code rotary_cos}/{@code rotary_sin} on q): a copy of q is rotated, the
     * caller's tensor is left as it is. Row {@code i} of batch entry {@code b} is rotated to position {@code n - Sq +
     * i} with {@code n = cacheLens[b] - cacheLeftpad[b]} its visible keys (positions count from the pad): the queries
     * are the last {@code Sq} tokens of each sequence, whose keys the cache holds rotated to the same positions. An
     * entry with no keys is not rotated (it sees nothing); one with keys needs at least {@code Sq} of them.
     *
     * @param q queries {@code [B, Hq, Sq, D]}, before rotation
     * @param kCache the key cache {@code [Bc, Hkv, capacity, D]}
     * @param vCache the value cache {@code [Bc, Hkv, capacity, Dv]}
     * @param index each batch entry's end, row and first key in the caches
     * @param options masking, scale and the other options of the call
     * @param rope rotates q to its positions; null for none
     * @return the output, in q's dtype, and the LSE
     */
    public static AttentionResult forwardCached(
            Tensor q, Tensor kCache, Tensor vCache, CacheIndex index, AttentionOptions options, Rope rope) {
        AttentionResult result = allocateResult(q, vCache);
        java.util.Objects.requireNonNull(kCache, "kCache");
        CacheIndex checked = ServingShapes.cacheIndex(index, q.batch(), kCache);
        Tensor queries = q;
        if (rope != null) {
            int[] keyLens = new int[q.batch()];
            for (int b = 0; b < keyLens.length; b++) {
                keyLens[b] = checked.cacheLens()[b] - checked.cacheLeftpad()[b];
            }
            queries = rope.rotatedQueries(q, keyLens);
        }
        // A plain index goes as one, so a backend with only the plain cached entry point runs it.
        CacheIndex call = index.isPlain() ? CacheIndex.ofLengths(checked.cacheLens()) : checked;
        Backends.selected(ServingPredicates.serving(queries, vCache == null ? 0 : vCache.headDim(), options))
                .forwardCached(queries, kCache, vCache, call, result.out(), result.lse(), options);
        return result;
    }

    /**
     * Paged attention in the vLLM block-table layout, on the best available backend with serving entry
     * points that computes in host memory ({@link ServingPredicates#serving}). {@code kCache} is the tensor {@code [numBlocks, Hkv, blockSize, D]}; vLLM's memory layout
     * {@code [numBlocks, blockSize, Hkv, D]} is the view {@code Tensor.ofBshd(data, numBlocks, blockSize, Hkv, D)} (or
     * {@code Tensor.of(segment, dtype, {numBlocks, Hkv, blockSize, D}, {blockSize*Hkv*D, D, Hkv*D, 1})}).
     * Sequence {@code b} (batch entry {@code b} of q {@code [B, Hq, Sq, D]}) has {@code contextLens[b]} keys,
     * key {@code j} in slot {@code j % blockSize} of block {@code blockTables[b][j / blockSize]}; its queries are
     * its last {@code Sq} positions. Every block index and length is checked before any read
     * ({@link ServingShapes#paged}).
     *
     * @param q queries {@code [B, Hq, Sq, D]}
     * @param kCache the key blocks {@code [numBlocks, Hkv, blockSize, D]}
     * @param vCache the value blocks {@code [numBlocks, Hkv, blockSize, Dv]}
     * @param blockTables each sequence's block ids, in position order
     * @param contextLens cached tokens of each sequence
     * @param options masking, scale and the other options of the call
     * @return the output, in q's dtype, and the LSE
     */
    public static AttentionResult forwardPaged(
            Tensor q, Tensor kCache, Tensor vCache, int[][] blockTables, int[] contextLens, AttentionOptions options) {
        AttentionResult result = allocateResult(q, vCache);
        Backends.selected(ServingPredicates.serving(q, vCache == null ? 0 : vCache.headDim(), options))
                .forwardPaged(
                        q, new PagedKv(kCache, vCache, blockTables, contextLens), result.out(), result.lse(), options);
        return result;
    }

    /**
     * Paged attention of packed variable-length queries: vLLM's chunked prefill mixed with decode in one call,
     * FlashAttention's {@code flash_attn_varlen_func(q, k_cache, v_cache, cu_seqlens_q, ..., seqused_k=contextLens,
     * block_table=blockTables)}, FlashInfer's {@code BatchPrefillWithPagedKVCacheWrapper} with {@code qo_indptr =
     * cuSeqlensQ}. Sequence {@code s} is rows {@code [cuSeqlensQ[s], cuSeqlensQ[s+1])} of q (0 rows allowed, 1 for a
     * decode step, many for a prefill chunk) against its {@code contextLens[s]} cached keys, key {@code j} in slot
     * {@code j % blockSize} of block {@code blockTables[s][j / blockSize]} (caches as {@link #forwardPaged} has
     * them). Causal masking, windows and ALiBi are aligned bottom-right per sequence: its rows are its last
     * positions, so append a chunk's keys before attending. No row sees another sequence; a sequence's result does
     * not depend on the others. Every offset, length and block id is checked before any read
     * ({@link ServingShapes#varlenPaged}).
     *
     * @param q query rows of every sequence {@code [1, Hq, totalQ, D]}
     * @param kCache the key blocks {@code [numBlocks, Hkv, blockSize, D]}
     * @param vCache the value blocks {@code [numBlocks, Hkv, blockSize, Dv]}
     * @param cuSeqlensQ where each sequence's query rows start, then the total ({@code n + 1} entries from 0)
     * @param blockTables each sequence's block ids, in position order ({@code n} tables)
     * @param contextLens cached tokens of each sequence ({@code n} lengths), its rows included
     * @param options masking, scale and the other options of the call
     * @return the output {@code [1, Hq, totalQ, Dv]}, in q's dtype, and the LSE
     */
    public static AttentionResult forwardVarlenPaged(
            Tensor q,
            Tensor kCache,
            Tensor vCache,
            int[] cuSeqlensQ,
            int[][] blockTables,
            int[] contextLens,
            AttentionOptions options) {
        AttentionResult result = allocateResult(q, vCache);
        Backends.selected(ServingPredicates.serving(q, vCache == null ? 0 : vCache.headDim(), options))
                .forwardVarlenPaged(
                        q,
                        new PagedKv(kCache, vCache, blockTables, contextLens),
                        cuSeqlensQ,
                        result.out(),
                        result.lse(),
                        options);
        return result;
    }

    /**
     * {@link #forwardPaged(Tensor, Tensor, Tensor, int[][], int[], AttentionOptions)} with q rotated by {@code rope}
     * inside the call (FlashAttention's {@code rotary_cos}/{@code rotary_sin} on q): a copy of q is rotated, row
     * {@code i} of sequence {@code b} to position {@code contextLens[b] - Sq + i}, the last {@code Sq} positions of
     * the sequence. A sequence with no keys is not rotated (it sees nothing); one with keys needs at least
     * {@code Sq} of them. The tables and lengths are copied once, and the copies rotated by and validated.
     *
     * @param q queries {@code [B, Hq, Sq, D]}, before rotation
     * @param kCache the key blocks {@code [numBlocks, Hkv, blockSize, D]}
     * @param vCache the value blocks {@code [numBlocks, Hkv, blockSize, Dv]}
     * @param blockTables each sequence's block ids, in position order
     * @param contextLens cached tokens of each sequence
     * @param options masking, scale and the other options of the call
     * @param rope rotates q to its positions; null for none
     * @return the output, in q's dtype, and the LSE
     */
    public static AttentionResult forwardPaged(
            Tensor q,
            Tensor kCache,
            Tensor vCache,
            int[][] blockTables,
            int[] contextLens,
            AttentionOptions options,
            Rope rope) {
        AttentionResult result = allocateResult(q, vCache);
        int[] lens =
                java.util.Objects.requireNonNull(contextLens, "contextLens").clone();
        int[][] tables =
                java.util.Objects.requireNonNull(blockTables, "blockTables").clone();
        if (rope != null && lens.length != q.batch()) {
            throw new IllegalArgumentException("contextLens: length " + lens.length + " must equal the batch "
                    + q.batch() + " of q " + q.shapeString());
        }
        Tensor queries = rope == null ? q : rope.rotatedQueries(q, nonNegative(lens));
        Backends.selected(ServingPredicates.serving(queries, vCache == null ? 0 : vCache.headDim(), options))
                .forwardPaged(queries, new PagedKv(kCache, vCache, tables, lens), result.out(), result.lse(), options);
        return result;
    }

    /** Negative lengths as 0 for the rotation; the backend's validation then rejects them. */
    private static int[] nonNegative(int[] lens) {
        int[] copy = lens.clone();
        for (int b = 0; b < copy.length; b++) {
            copy[b] = Math.max(0, copy[b]);
        }
        return copy;
    }

    /**
     * Packed variable-length attention (no padding): q {@code [1, Hq, totalQ, D]}, k and v
     * {@code [1, Hkv, totalK, D]} hold sequences back to back; sequence {@code s} is rows
     * {@code [cuSeqlensQ[s], cuSeqlensQ[s+1])} against keys {@code [cuSeqlensK[s], cuSeqlensK[s+1])}. No row
     * sees another sequence; causal, window and ALiBi apply within each sequence.
     *
     * @param q query rows of every sequence {@code [1, Hq, totalQ, D]}
     * @param k keys of every sequence {@code [1, Hkv, totalK, D]}
     * @param v values of every sequence {@code [1, Hkv, totalK, Dv]}
     * @param cuSeqlensQ where each sequence's query rows start, then the total ({@code n + 1} entries from 0)
     * @param cuSeqlensK where each sequence's keys start, then the total ({@code n + 1} entries from 0)
     * @param options masking, scale and the other options of the call
     * @return the output {@code [1, Hq, totalQ, Dv]}, in q's dtype, and the LSE
     */
    public static AttentionResult forwardVarlen(
            Tensor q, Tensor k, Tensor v, int[] cuSeqlensQ, int[] cuSeqlensK, AttentionOptions options) {
        AttentionResult result = allocateResult(q, v);
        forwardVarlenInto(q, k, v, cuSeqlensQ, cuSeqlensK, result.out(), result.lse(), options);
        return result;
    }

    /**
     * {@link #forwardVarlen} into caller-owned {@code out} (and {@code lse} when not null), so that a model can
     * write each layer's attention straight into its own buffer, through any strided view of it: the same values,
     * bit for bit. {@code out} and {@code lse} are validated as {@link #forwardInto} validates them (shape, dtype,
     * writable, no overlap with an input or with each other) before anything is written.
     *
     * @param q query rows of every sequence {@code [1, Hq, totalQ, D]}
     * @param k keys of every sequence {@code [1, Hkv, totalK, D]}
     * @param v values of every sequence {@code [1, Hkv, totalK, Dv]}
     * @param cuSeqlensQ where each sequence's query rows start, then the total ({@code n + 1} entries from 0)
     * @param cuSeqlensK where each sequence's keys start, then the total ({@code n + 1} entries from 0)
     * @param out receives the output {@code [1, Hq, totalQ, Dv]}, in q's dtype
     * @param lse receives each row's log-sum-exp, F32 {@code [1, Hq, totalQ, 1]}; null when not wanted
     * @param options masking, scale and the other options of the call
     */
    public static void forwardVarlenInto(
            Tensor q,
            Tensor k,
            Tensor v,
            int[] cuSeqlensQ,
            int[] cuSeqlensK,
            Tensor out,
            Tensor lse,
            AttentionOptions options) {
        Backends.selected(ServingPredicates.packed(q, v == null ? 0 : v.headDim(), options))
                .forwardVarlen(q, k, v, new PackedSequences(cuSeqlensQ, cuSeqlensK), out, lse, options);
    }

    /**
     * Gradients of {@link #forwardVarlen}: q, k, v, the offsets and the options of the forward, its output and LSE,
     * and the gradient of the loss with respect to the output. Every option applies per sequence as in the forward
     * (causal aligned per sequence, windows, softcap, ALiBi, dropout with the sequence's index as batch index); no
     * gradient crosses a sequence boundary, and the rows of a sequence without keys (and the keys of one without
     * rows) get 0. On the best available backend with serving entry points and a backward; deterministic on cpu
     * (bitwise the same for any thread count). The offsets are validated as {@link #forwardVarlen} does.
     *
     * @param q query rows of every sequence {@code [1, Hq, totalQ, D]}
     * @param k keys of every sequence {@code [1, Hkv, totalK, D]}
     * @param v values of every sequence {@code [1, Hkv, totalK, Dv]}
     * @param out the forward's output {@code [1, Hq, totalQ, Dv]}
     * @param dOut the gradient of the loss with respect to {@code out}, shaped like it
     * @param lse the forward's log-sum-exp, F32 {@code [1, Hq, totalQ, 1]}
     * @param cuSeqlensQ where each sequence's query rows start, then the total ({@code n + 1} entries from 0)
     * @param cuSeqlensK where each sequence's keys start, then the total ({@code n + 1} entries from 0)
     * @param options masking, scale and the other options of the call
     * @return the gradients of q, k and v, each in the dtype of its input
     */
    public static Gradients backwardVarlen(
            Tensor q,
            Tensor k,
            Tensor v,
            Tensor out,
            Tensor dOut,
            Tensor lse,
            int[] cuSeqlensQ,
            int[] cuSeqlensK,
            AttentionOptions options) {
        java.util.Objects.requireNonNull(q, "q");
        java.util.Objects.requireNonNull(k, "k");
        java.util.Objects.requireNonNull(v, "v");
        AttentionBackend backend = Backends.selected(ServingPredicates.packedBackward(q, v.headDim(), options));
        Gradients grads = new Gradients(
                Tensor.allocate(q.dtype(), q.batch(), q.heads(), q.seqLen(), q.headDim()),
                Tensor.allocate(k.dtype(), k.batch(), k.heads(), k.seqLen(), k.headDim()),
                Tensor.allocate(v.dtype(), v.batch(), v.heads(), v.seqLen(), v.headDim()));
        backend.backwardVarlen(
                new BackwardInputs(q, k, v, out, dOut, lse),
                new PackedSequences(cuSeqlensQ, cuSeqlensK),
                grads,
                options);
        return grads;
    }

    /**
     * Combines attention results of the same queries over disjoint key sets into the exact result over
     * their union (split-KV, context parallelism, ring attention): each partial is weighted by
     * {@code exp(lse_p - lse)}. Partials with {@code lse = -inf} contribute nothing; if all are empty the row
     * is 0 with {@code lse = -inf}. Computed in float64; the output has the first partial's dtype.
     *
     * <p>Every partial output is {@code [B, H, S, Dv]} like the first, every LSE F32 {@code [B, H, S, 1]},
     * all memory alive and reachable from the calling thread, and every LSE value finite or {@code -inf}:
     * {@code +inf} and NaN come from no forward and are rejected. NaN in a partial output propagates to the
     * rows that weigh it.
     *
     * @param partials attention results over disjoint keys of the same queries, each with its LSE
     * @return the attention over the union of their keys, with its LSE
     * @throws IllegalArgumentException when a rule above is broken, naming the partial
     */
    public static AttentionResult mergeStates(List<AttentionResult> partials) {
        java.util.Objects.requireNonNull(partials, "partials");
        if (partials.isEmpty()
                || partials.getFirst() == null
                || partials.getFirst().out() == null) {
            throw new IllegalArgumentException("partials: need at least one (out, lse) pair");
        }
        Tensor first = partials.getFirst().out();
        AttentionResult merged = new AttentionResult(
                Tensor.allocate(first.dtype(), first.batch(), first.heads(), first.seqLen(), first.headDim()),
                Tensor.allocate(DType.F32, first.batch(), first.heads(), first.seqLen(), 1));
        StateMerge.merge(partials, merged.out(), merged.lse());
        return merged;
    }

    /**
     * {@link #mergeStates(List)} into caller-owned {@code out} and F32 {@code lse}, which must not overlap the
     *     partials.
     *
     * @param partials attention results over disjoint keys of the same queries, each with its LSE
     * @param out receives the merged output, shaped like each partial output
     * @param lse receives the merged log-sum-exp, F32, shaped like each partial LSE
     * @throws IllegalArgumentException when a rule of {@link #mergeStates(List)} is broken, or out or lse is not
     *     writable or overlaps a partial or each other; nothing is written then
     */
    public static void mergeStatesInto(List<AttentionResult> partials, Tensor out, Tensor lse) {
        StateMerge.merge(partials, out, lse);
    }

    private static AttentionResult allocateResult(Tensor q, Tensor v) {
        java.util.Objects.requireNonNull(q, "q");
        java.util.Objects.requireNonNull(v, "v");
        return new AttentionResult(
                Tensor.allocate(q.dtype(), q.batch(), q.heads(), q.seqLen(), v.headDim()),
                Tensor.allocate(DType.F32, q.batch(), q.heads(), q.seqLen(), 1));
    }

    private static Tensor allocateOut(
            Tensor q, Tensor k, Tensor v, AttentionOptions options, AttentionBackend backend) {
        AttentionShape shape = AttentionShape.ofInputs(q, k, v, options, backend.capabilities());
        return Tensor.allocate(q.dtype(), shape.batch(), shape.queryHeads(), shape.queryLen(), shape.valueDim());
    }

    /**
     * Whether a backend with given capabilities can run a forward over these inputs: head dims, dtypes and
     * masks. Missing inputs pass, so that the chosen backend's validation names them.
     */
    private static Predicate<Capabilities> canForward(Tensor q, Tensor k, Tensor v, AttentionOptions options) {
        if (q == null || k == null || v == null || options == null) {
            return caps -> true;
        }
        int headDim = Math.max(q.headDim(), v.headDim());
        return caps -> caps.maxHeadDim() >= headDim
                && caps.dtypes().contains(q.dtype())
                && caps.dtypes().contains(k.dtype())
                && caps.dtypes().contains(v.dtype())
                && caps.runsMasks(options, false)
                && (caps.dropout() || !options.hasDropout())
                && (caps.alibiPerBatch() || options.alibiBatches() == 0)
                && (caps.sinks() || !options.hasSinks());
    }
}
