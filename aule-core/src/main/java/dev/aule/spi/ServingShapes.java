package dev.aule.spi;

import dev.aule.AttentionOptions;
import dev.aule.Gradients;
import dev.aule.Tensor;

import java.util.Arrays;
import java.util.Objects;

/**
 * Validation of the serving entry points (attention against a cache with a length per sequence,
 * paged attention, packed variable-length attention), in the spirit of {@link AttentionShape}: every
 * shape, length, offset and block index a kernel will use is checked before anything is read or
 * written, and a violation is an {@link IllegalArgumentException} naming the argument and the rule.
 */
public final class ServingShapes {
    private ServingShapes() {}

    /**
     * Attention of q {@code [B, Hq, Sq, D]} against the first {@code cacheLens[b]} keys of batch entry
     * {@code b} of {@code kCache} {@code [B, Hkv, capacity, D]} and {@code vCache}
     * {@code [B, Hkv, capacity, Dv]}; {@code 0 <= cacheLens[b] <= capacity}. The returned shape has
     * {@code keyLen = capacity}; each sequence's own is its length.
     *
     * @param q queries {@code [B, Hq, Sq, D]}
     * @param kCache the key cache {@code [B, Hkv, capacity, D]}
     * @param vCache the value cache {@code [B, Hkv, capacity, Dv]}
     * @param cacheLens cached tokens of each batch entry, {@code 0 <= cacheLens[b] <= capacity}
     * @param out receives the output {@code [B, Hq, Sq, Dv]}
     * @param lse receives each row's log-sum-exp, F32 {@code [B, Hq, Sq, 1]}; null when not wanted
     * @param options masking, scale and the other options of the call
     * @param capabilities what the backend supports; head dims and dtypes are checked against it
     * @return the validated shape
     */
    public static AttentionShape cached(
            Tensor q,
            Tensor kCache,
            Tensor vCache,
            int[] cacheLens,
            Tensor out,
            Tensor lse,
            AttentionOptions options,
            Capabilities capabilities) {
        rejectMasks(options, "cached");
        rejectDropout(options, "cached");
        Objects.requireNonNull(kCache, "kCache");
        Objects.requireNonNull(vCache, "vCache");
        TensorChecks.checkAccessible(new NamedTensor("kCache", kCache), new NamedTensor("vCache", vCache));
        AttentionShape shape = AttentionShape.forward(q, kCache, vCache, out, lse, options, capabilities);
        Objects.requireNonNull(cacheLens, "cacheLens");
        if (cacheLens.length != shape.batch()) {
            throw new IllegalArgumentException("cacheLens: length " + cacheLens.length + " must equal the batch "
                    + shape.batch() + " of q " + q.shapeString());
        }
        for (int b = 0; b < cacheLens.length; b++) {
            if (cacheLens[b] < 0 || cacheLens[b] > shape.keyLen()) {
                throw new IllegalArgumentException("cacheLens[" + b + "]: " + cacheLens[b] + " must be in [0, capacity "
                        + shape.keyLen() + "] of kCache " + kCache.shapeString());
            }
        }
        return shape;
    }

    /**
     * Attention of q {@code [B, Hq, Sq, D]} against chosen rows of contiguous caches: batch entry {@code b} reads
     * row {@code cacheBatchIdx[b]} of {@code kCache} {@code [Bc, Hkv, capacity, D]} and {@code vCache}
     * {@code [Bc, Hkv, capacity, Dv]}, keys {@code [cacheLeftpad[b], cacheLens[b])} of it (FlashAttention's
     * {@code cache_batch_idx}, {@code cache_leftpad} and {@code cache_seqlens}). The index arrays are copied and
     * the copies validated ({@link #cacheIndex}); the returned call holds them, filled in (identity rows, zero
     * pads) where the caller passed null, and its shape has {@code batch = B} and {@code keyLen = capacity}.
     *
     * @param q queries {@code [B, Hq, Sq, D]}
     * @param kCache the key cache {@code [Bc, Hkv, capacity, D]}
     * @param vCache the value cache {@code [Bc, Hkv, capacity, Dv]}
     * @param index each batch entry's row, first key and end in the caches
     * @param out receives the output {@code [B, Hq, Sq, Dv]}
     * @param lse receives each row's log-sum-exp, F32 {@code [B, Hq, Sq, 1]}; null when not wanted
     * @param options masking, scale and the other options of the call
     * @param capabilities what the backend supports; head dims and dtypes are checked against it
     * @return the validated shape and the validated copies of the index arrays
     */
    public static CachedCall cached(
            Tensor q,
            Tensor kCache,
            Tensor vCache,
            CacheIndex index,
            Tensor out,
            Tensor lse,
            AttentionOptions options,
            Capabilities capabilities) {
        Objects.requireNonNull(q, "q");
        Objects.requireNonNull(kCache, "kCache");
        Objects.requireNonNull(vCache, "vCache");
        checkCaches(q, kCache, vCache, out, options, "cached", "[Bc, Hkv, capacity, D]", "Bc, Hkv and capacity");
        CacheIndex checked = cacheIndex(index, q.batch(), kCache);
        // The per-row rules (heads, head dims, dtypes, slopes, the ALiBi range over the capacity) are forward's,
        // on one cache row as keys: rows are read by index, so the caches' batch need not be q's.
        AttentionShape rows = AttentionShape.ofInputs(
                q.sequence(0, 0, q.seqLen()),
                kCache.sequence(0, 0, kCache.seqLen()),
                vCache.sequence(0, 0, vCache.seqLen()),
                options,
                capabilities,
                q.batch());
        AttentionShape shape = new AttentionShape(
                q.batch(),
                rows.queryHeads(),
                rows.kvHeads(),
                rows.queryLen(),
                kCache.seqLen(),
                rows.headDim(),
                rows.valueDim());
        NamedTensor[] inputs = {
            new NamedTensor("q", q), new NamedTensor("kCache", kCache), new NamedTensor("vCache", vCache)
        };
        shape.checkOutput("out", out, shape.outShape(), capabilities, inputs);
        if (lse != null) {
            shape.checkLse(lse, capabilities);
            TensorChecks.checkWritable("lse", lse, inputs);
            TensorChecks.checkNoOverlap("lse", lse, "out", out);
        }
        return new CachedCall(shape, checked.cacheLens(), checked.cacheBatchIdx(), checked.cacheLeftpad());
    }

    /**
     * Copies and validates the index arrays of a cached call with {@code batch} query batch entries against the
     * caches' rows ({@code kCache.batch()}) and capacity ({@code kCache.seqLen()}). Rules: {@code cacheLens} has
     * one entry per batch entry; so do {@code cacheBatchIdx} and {@code cacheLeftpad} when not null;
     * {@code 0 <= cacheBatchIdx[b] < Bc}, and {@code Bc} equals the batch when {@code cacheBatchIdx} is null;
     * {@code 0 <= cacheLeftpad[b] <= cacheLens[b] <= capacity}. Only the copies are read after the checks.
     *
     * @param index the caller's index arrays
     * @param batch the batch of q
     * @param kCache the key cache {@code [Bc, Hkv, capacity, D]}
     * @return validated copies, none null: identity rows and zero pads where the caller passed null
     * @throws IllegalArgumentException naming the array entry and the rule it breaks
     */
    public static CacheIndex cacheIndex(CacheIndex index, int batch, Tensor kCache) {
        Objects.requireNonNull(index, "index");
        Objects.requireNonNull(kCache, "kCache");
        int[] lens = Objects.requireNonNull(index.cacheLens(), "cacheLens").clone();
        int[] rows =
                index.cacheBatchIdx() == null ? null : index.cacheBatchIdx().clone();
        int[] pads = index.cacheLeftpad() == null ? null : index.cacheLeftpad().clone();
        int cacheRows = kCache.batch();
        int capacity = kCache.seqLen();
        checkLength("cacheLens", lens, batch);
        if (rows == null) {
            if (cacheRows != batch) {
                throw new IllegalArgumentException("kCache: its " + cacheRows + " rows must equal the batch " + batch
                        + " of q when cacheBatchIdx is null (entry b reads row b); pass cacheBatchIdx to choose rows");
            }
            rows = new int[batch];
            Arrays.setAll(rows, b -> b);
        } else {
            checkLength("cacheBatchIdx", rows, batch);
        }
        if (pads == null) {
            pads = new int[batch];
        } else {
            checkLength("cacheLeftpad", pads, batch);
        }
        for (int b = 0; b < batch; b++) {
            if (rows[b] < 0 || rows[b] >= cacheRows) {
                throw new IllegalArgumentException("cacheBatchIdx[" + b + "]: " + rows[b] + " must be in [0, Bc "
                        + cacheRows + "), the rows of kCache " + kCache.shapeString());
            }
            if (lens[b] < 0 || lens[b] > capacity) {
                throw new IllegalArgumentException("cacheLens[" + b + "]: " + lens[b] + " must be in [0, capacity "
                        + capacity + "] of kCache " + kCache.shapeString());
            }
            if (pads[b] < 0 || pads[b] > lens[b]) {
                throw new IllegalArgumentException("cacheLeftpad[" + b + "]: " + pads[b] + " must be in [0, cacheLens["
                        + b + "] " + lens[b] + "] (0 <= leftpad <= len <= capacity: keys are [leftpad, len))");
            }
        }
        return new CacheIndex(lens, rows, pads);
    }

    private static void checkLength(String name, int[] a, int batch) {
        if (a.length != batch) {
            throw new IllegalArgumentException(name + ": length " + a.length + " must equal the batch " + batch
                    + " of q (one entry per sequence)");
        }
    }

    /**
     * A validated cached call with a row index and left pads.
     *
     * @param shape its geometry: q's batch, {@code keyLen} the capacity
     * @param cacheLens the validated copy of the ends
     * @param cacheBatchIdx the validated copy of the rows (the identity when the caller passed none)
     * @param cacheLeftpad the validated copy of the first keys (zeros when the caller passed none)
     */
    public record CachedCall(AttentionShape shape, int[] cacheLens, int[] cacheBatchIdx, int[] cacheLeftpad) {
        /**
         * Keys batch entry {@code b} sees: {@code cacheLens[b] - cacheLeftpad[b]}.
         *
         * @param b the batch entry of q
         * @return its visible keys
         */
        public int keyLen(int b) {
            return cacheLens[b] - cacheLeftpad[b];
        }
    }

    /**
     * The sequences of a validated {@link #cached(Tensor, Tensor, Tensor, CacheIndex, Tensor, Tensor,
     * AttentionOptions, Capabilities)} call: batch entry {@code b}'s rows against keys {@code [cacheLeftpad[b],
     * cacheLens[b])} of cache row {@code cacheBatchIdx[b]}, as views; its index (for dropout and per-batch ALiBi) is
     * {@code b}, and its keys start at position 0 of the view, so causal alignment, windows and ALiBi distances are
     * relative to the visible keys.
     *
     * @param q queries {@code [B, Hq, Sq, D]}
     * @param kCache the key cache {@code [Bc, Hkv, capacity, D]}
     * @param vCache the value cache {@code [Bc, Hkv, capacity, Dv]}
     * @param call the validated call
     * @param out receives the output {@code [B, Hq, Sq, Dv]}
     * @param lse receives each row's log-sum-exp, or null
     * @return one view per batch entry
     */
    public static java.util.List<SequenceView> cachedSequences(
            Tensor q, Tensor kCache, Tensor vCache, CachedCall call, Tensor out, Tensor lse) {
        java.util.List<SequenceView> views = new java.util.ArrayList<>(q.batch());
        for (int b = 0; b < q.batch(); b++) {
            int row = call.cacheBatchIdx()[b];
            int start = call.cacheLeftpad()[b];
            int len = call.keyLen(b);
            views.add(new SequenceView(
                    q.sequence(b, 0, q.seqLen()),
                    len == 0 ? null : kCache.sequence(row, start, len),
                    len == 0 ? null : vCache.sequence(row, start, len),
                    out.sequence(b, 0, q.seqLen()),
                    lse == null ? null : lse.sequence(b, 0, q.seqLen()),
                    b));
        }
        return views;
    }

    /**
     * Paged attention: sequence {@code b} has {@code contextLens[b]} keys; key {@code j} lives in slot
     * {@code j % blockSize} of block {@code blockTables[b][j / blockSize]}. {@code kCache} is
     * {@code [numBlocks, Hkv, blockSize, D]} (the vLLM memory layout {@code [numBlocks, blockSize, Hkv, D]}
     * is this view with BSHD strides), {@code vCache} {@code [numBlocks, Hkv, blockSize, Dv]}. Rules:
     * one table and one length per query batch entry, {@code 0 <= contextLens[b] <= blockTables[b].length
     * * blockSize}, and every block id a context reaches (the first {@code ceil(contextLens[b] / blockSize)}
     * of its table) in {@code [0, numBlocks)}; later entries are never read. The tables and lengths are
     * copied first and the copies validated, so a backend reads exactly what was checked however the
     * caller's arrays change meanwhile; the shape's {@code keyLen} is the longest context.
     *
     * @param q queries {@code [B, Hq, Sq, D]}
     * @param cache the block pools, each sequence's block table and its length
     * @param out receives the output {@code [B, Hq, Sq, Dv]}
     * @param lse receives each row's log-sum-exp, F32 {@code [B, Hq, Sq, 1]}; null when not wanted
     * @param options masking, scale and the other options of the call
     * @param capabilities what the backend supports; head dims and dtypes are checked against it
     * @return the validated shape with the copied tables and lengths
     */
    public static PagedCall paged(
            Tensor q, PagedKv cache, Tensor out, Tensor lse, AttentionOptions options, Capabilities capabilities) {
        Objects.requireNonNull(q, "q");
        Objects.requireNonNull(cache, "cache");
        Tensor kCache = Objects.requireNonNull(cache.kCache(), "kCache");
        Tensor vCache = Objects.requireNonNull(cache.vCache(), "vCache");
        int[][] blockTables = Objects.requireNonNull(cache.blockTables(), "blockTables");
        int[] contextLens = Objects.requireNonNull(cache.contextLens(), "contextLens");
        int[][] tables = copyOf(blockTables);
        int[] lens = contextLens.clone();
        String shapes = checkCaches(
                q,
                kCache,
                vCache,
                out,
                options,
                "paged",
                "[numBlocks, Hkv, blockSize, D]",
                "numBlocks, Hkv and blockSize");
        // The per-row rules (heads, head dims, dtypes, slopes) are forward's, on one block as keys.
        Tensor kBlock = kCache.sequence(0, 0, kCache.seqLen());
        Tensor vBlock = vCache.sequence(0, 0, vCache.seqLen());
        AttentionShape rows =
                AttentionShape.ofInputs(q.sequence(0, 0, q.seqLen()), kBlock, vBlock, options, capabilities, q.batch());
        int batch = q.batch();
        if (tables.length != batch || lens.length != batch) {
            throw new IllegalArgumentException("blockTables, contextLens: lengths " + tables.length + " and "
                    + lens.length + " must both equal the batch " + batch + " of q" + shapes);
        }
        int longest = checkTables(tables, lens, kCache.batch(), kCache.seqLen(), shapes);
        AttentionShape.checkAlibiRange(options, Math.max(longest, q.seqLen()));
        AttentionShape shape = new AttentionShape(
                batch, rows.queryHeads(), rows.kvHeads(), rows.queryLen(), longest, rows.headDim(), rows.valueDim());
        NamedTensor[] inputs = {
            new NamedTensor("q", q), new NamedTensor("kCache", kCache), new NamedTensor("vCache", vCache)
        };
        shape.checkOutput("out", out, shape.outShape(), capabilities, inputs);
        if (lse != null) {
            shape.checkLse(lse, capabilities);
            TensorChecks.checkWritable("lse", lse, inputs);
            TensorChecks.checkNoOverlap("lse", lse, "out", out);
        }
        return new PagedCall(shape, tables, lens);
    }

    /**
     * A validated paged call.
     *
     * @param shape its geometry; {@code keyLen} is the longest context
     * @param blockTables the validated copy of the block tables: what a backend reads
     * @param contextLens the validated copy of the lengths
     */
    public record PagedCall(AttentionShape shape, int[][] blockTables, int[] contextLens) {}

    /**
     * Paged attention of packed variable-length queries (vLLM's chunked prefill mixed with decode; FlashAttention's
     * {@code flash_attn_varlen_func} with {@code block_table} and {@code seqused_k}; FlashInfer's
     * {@code BatchPrefillWithPagedKVCacheWrapper} with {@code qo_indptr}): q {@code [1, Hq, totalQ, D]} holds
     * {@code n} sequences' rows back to back, sequence {@code s} rows {@code [cuSeqlensQ[s], cuSeqlensQ[s+1])}
     * against its {@code contextLens[s]} cached keys read through {@code blockTables[s]}, as {@link #paged} reads
     * them. Rules: {@code cuSeqlensQ} as {@link #varlen} has them ({@code n + 1} offsets from 0 to {@code totalQ},
     * never decreasing; a sequence may have no row), one table and one length per sequence, and each table and
     * length as {@link #paged} has them. A sequence with more rows than keys is allowed: under causal masking its
     * first rows see no key (0, and LSE {@code -inf} or the sink). The offsets, tables and lengths are copied
     * first and the copies validated; the shape's {@code keyLen} is the longest context, its batch 1.
     *
     * @param q query rows of every sequence {@code [1, Hq, totalQ, D]}
     * @param cache the block pools, each sequence's block table and its length
     * @param cuSeqlensQ where each sequence's query rows start, then the total ({@code n + 1} entries from 0)
     * @param out receives the output {@code [1, Hq, totalQ, Dv]}
     * @param lse receives each row's log-sum-exp, F32 {@code [1, Hq, totalQ, 1]}; null when not wanted
     * @param options masking, scale and the other options of the call
     * @param capabilities what the backend supports; head dims and dtypes are checked against it
     * @return the validated shape with the copied offsets, tables and lengths
     */
    public static VarlenPagedCall varlenPaged(
            Tensor q,
            PagedKv cache,
            int[] cuSeqlensQ,
            Tensor out,
            Tensor lse,
            AttentionOptions options,
            Capabilities capabilities) {
        Objects.requireNonNull(q, "q");
        Objects.requireNonNull(cache, "cache");
        Tensor kCache = Objects.requireNonNull(cache.kCache(), "kCache");
        Tensor vCache = Objects.requireNonNull(cache.vCache(), "vCache");
        int[][] tables = copyOf(Objects.requireNonNull(cache.blockTables(), "blockTables"));
        int[] lens = Objects.requireNonNull(cache.contextLens(), "contextLens").clone();
        int[] cu = Objects.requireNonNull(cuSeqlensQ, "cuSeqlensQ").clone();
        String shapes = checkCaches(
                q,
                kCache,
                vCache,
                out,
                options,
                "paged variable-length",
                "[numBlocks, Hkv, blockSize, D]",
                "numBlocks, Hkv and blockSize");
        if (q.batch() != 1) {
            throw new IllegalArgumentException("q: batch must be 1 for packed sequences (they are told apart by "
                    + "cuSeqlensQ), got " + q.shapeString());
        }
        int sequences = cu.length - 1;
        AttentionShape rows = AttentionShape.ofInputs(
                q,
                kCache.sequence(0, 0, kCache.seqLen()),
                vCache.sequence(0, 0, vCache.seqLen()),
                options,
                capabilities,
                Math.max(sequences, 0));
        checkOffsets("cuSeqlensQ", cu, q.seqLen(), "q");
        if (tables.length != sequences || lens.length != sequences) {
            throw new IllegalArgumentException("blockTables, contextLens: lengths " + tables.length + " and "
                    + lens.length + " must both equal the " + sequences + " sequences of cuSeqlensQ (its length - 1)"
                    + shapes);
        }
        int longest = checkTables(tables, lens, kCache.batch(), kCache.seqLen(), shapes);
        AttentionShape.checkAlibiRange(options, Math.max(longest, q.seqLen()));
        AttentionShape shape = new AttentionShape(
                1, rows.queryHeads(), rows.kvHeads(), rows.queryLen(), longest, rows.headDim(), rows.valueDim());
        NamedTensor[] inputs = {
            new NamedTensor("q", q), new NamedTensor("kCache", kCache), new NamedTensor("vCache", vCache)
        };
        shape.checkOutput("out", out, shape.outShape(), capabilities, inputs);
        if (lse != null) {
            shape.checkLse(lse, capabilities);
            TensorChecks.checkWritable("lse", lse, inputs);
            TensorChecks.checkNoOverlap("lse", lse, "out", out);
        }
        return new VarlenPagedCall(shape, cu, tables, lens);
    }

    /**
     * A validated paged variable-length call.
     *
     * @param shape its geometry: batch 1, all rows; {@code keyLen} is the longest context
     * @param cuSeqlensQ the validated copy of the row offsets
     * @param blockTables the validated copy of the block tables: what a backend reads
     * @param contextLens the validated copy of the lengths
     */
    public record VarlenPagedCall(AttentionShape shape, int[] cuSeqlensQ, int[][] blockTables, int[] contextLens) {
        /** {@return the number of sequences} */
        public int sequences() {
            return contextLens.length;
        }

        /**
         * The query rows of sequence {@code s}.
         *
         * @param s a sequence, {@code 0 <= s < sequences()}
         * @return its row count, possibly 0
         */
        public int rows(int s) {
            return cuSeqlensQ[s + 1] - cuSeqlensQ[s];
        }
    }

    /**
     * {@link #paged}'s rules on each table and length: {@code 0 <= lens[b] <= table.length * blockSize} and every block
     * id the context reaches in {@code [0, numBlocks)}. Returns the longest context.
     */
    private static int checkTables(int[][] tables, int[] lens, int numBlocks, int blockSize, String shapes) {
        int longest = 0;
        for (int b = 0; b < tables.length; b++) {
            int[] table = tables[b];
            if (table == null) {
                throw new IllegalArgumentException("blockTables[" + b + "]: is null");
            }
            long reach = (long) table.length * blockSize;
            if (lens[b] < 0 || lens[b] > reach) {
                throw new IllegalArgumentException("contextLens[" + b + "]: " + lens[b] + " must be in [0, " + reach
                        + "] (blockTables[" + b + "] has " + table.length + " blocks of " + blockSize + ")");
            }
            // ceilDiv: lens[b] + blockSize - 1 passes Integer.MAX_VALUE for a context near it, which would
            // wrap the count negative and skip the check of the block ids below.
            int used = Math.ceilDiv(lens[b], blockSize);
            for (int i = 0; i < used; i++) {
                if (table[i] < 0 || table[i] >= numBlocks) {
                    throw new IllegalArgumentException("blockTables[" + b + "][" + i + "]: block " + table[i]
                            + " must be in [0, numBlocks " + numBlocks + ")" + shapes);
                }
            }
            longest = Math.max(longest, lens[b]);
        }
        return longest;
    }

    /**
     * Packed variable-length attention: q {@code [1, Hq, totalQ, D]}, k {@code [1, Hkv, totalK, D]} and v hold
     * {@code n} sequences back to back; sequence {@code s} is query rows {@code [cuSeqlensQ[s], cuSeqlensQ[s+1])}
     * against keys {@code [cuSeqlensK[s], cuSeqlensK[s+1])}. Both offset arrays have {@code n + 1} entries,
     * start at 0, never decrease and end at the total.
     *
     * @param q query rows of every sequence {@code [1, Hq, totalQ, D]}
     * @param k keys of every sequence {@code [1, Hkv, totalK, D]}
     * @param v values of every sequence {@code [1, Hkv, totalK, Dv]}
     * @param packed where each sequence's query rows and keys start
     * @param out receives the output {@code [1, Hq, totalQ, Dv]}
     * @param lse receives each row's log-sum-exp, F32 {@code [1, Hq, totalQ, 1]}; null when not wanted
     * @param options masking, scale and the other options of the call
     * @param capabilities what the backend supports; head dims and dtypes are checked against it
     * @return the validated shape and the sequences that have query rows
     */
    public static VarlenCall varlen(
            Tensor q,
            Tensor k,
            Tensor v,
            PackedSequences packed,
            Tensor out,
            Tensor lse,
            AttentionOptions options,
            Capabilities capabilities) {
        PackedSequences offsets = copyOffsets(packed, options);
        int[] cuSeqlensQ = offsets.cuSeqlensQ();
        int[] cuSeqlensK = offsets.cuSeqlensK();
        AttentionShape shape = AttentionShape.forward(
                q, k, v, out, lse, options, capabilities, cuSeqlensQ == null ? -1 : cuSeqlensQ.length - 1);
        checkPacked(shape, q, cuSeqlensQ, cuSeqlensK);
        return new VarlenCall(shape, varlenSequences(q, k, v, cuSeqlensQ, cuSeqlensK, out, lse));
    }

    /**
     * The backward of a packed variable-length call: {@code in} holds the forward's packed q {@code [1, Hq, totalQ,
     * D]}, k and v {@code [1, Hkv, totalK, D]}, out, dOut {@code [1, Hq, totalQ, Dv]} and lse, {@code grads} the
     * gradients shaped like q, k and v; the offsets follow the rules of {@link #varlen}. Everything is validated (as
     * {@link AttentionShape#backward} and {@link #varlen} do) before anything is read or written. The returned
     * sequences are those with both query rows and keys; the gradient rows of the others (keys of a sequence without
     * rows, rows of one without keys) are 0, which the backend writes.
     *
     * @param in the forward's packed inputs, output and LSE, and the gradient of the output
     * @param packed where each sequence's query rows and keys start
     * @param grads receives the gradients
     * @param options masking, scale and the other options of the call
     * @param capabilities what the backend supports; head dims and dtypes are checked against it
     * @return the validated shape and the views of each sequence with rows and keys
     */
    public static VarlenBackwardCall varlenBackward(
            BackwardInputs in,
            PackedSequences packed,
            Gradients grads,
            AttentionOptions options,
            Capabilities capabilities) {
        PackedSequences offsets = copyOffsets(packed, options);
        int[] cuSeqlensQ = offsets.cuSeqlensQ();
        int[] cuSeqlensK = offsets.cuSeqlensK();
        AttentionShape shape = AttentionShape.backward(
                in, grads, options, capabilities, cuSeqlensQ == null ? -1 : cuSeqlensQ.length - 1);
        checkPacked(shape, in.q(), cuSeqlensQ, cuSeqlensK);
        java.util.List<BackwardSequence> sequences = new java.util.ArrayList<>(cuSeqlensQ.length - 1);
        for (int s = 0; s + 1 < cuSeqlensQ.length; s++) {
            int q0 = cuSeqlensQ[s];
            int k0 = cuSeqlensK[s];
            int rows = cuSeqlensQ[s + 1] - q0;
            int keys = cuSeqlensK[s + 1] - k0;
            if (rows > 0 && keys > 0) {
                sequences.add(new BackwardSequence(
                        new BackwardInputs(
                                in.q().sequence(0, q0, rows),
                                in.k().sequence(0, k0, keys),
                                in.v().sequence(0, k0, keys),
                                in.out().sequence(0, q0, rows),
                                in.dOut().sequence(0, q0, rows),
                                in.lse().sequence(0, q0, rows)),
                        new Gradients(
                                grads.dq().sequence(0, q0, rows),
                                grads.dk().sequence(0, k0, keys),
                                grads.dv().sequence(0, k0, keys)),
                        s));
            }
        }
        return new VarlenBackwardCall(shape, sequences);
    }

    /**
     * A validated packed backward.
     *
     * @param shape its geometry, the whole packed batch as one sequence
     * @param sequences a view of each sequence that has query rows and keys, built from the validated offsets
     */
    public record VarlenBackwardCall(AttentionShape shape, java.util.List<BackwardSequence> sequences) {
        /**
         * The shape of one sequence of the call: batch 1, its rows and keys.
         *
         * @param sequence one of the call's sequences
         * @return its shape
         */
        public AttentionShape shapeOf(BackwardSequence sequence) {
            return new AttentionShape(
                    1,
                    shape.queryHeads(),
                    shape.kvHeads(),
                    sequence.inputs().q().seqLen(),
                    sequence.inputs().k().seqLen(),
                    shape.headDim(),
                    shape.valueDim());
        }
    }

    /**
     * A validated packed call.
     *
     * @param shape its geometry, the whole packed batch as one sequence
     * @param sequences a view of each sequence that has query rows, built from the validated copy of the offsets
     */
    public record VarlenCall(AttentionShape shape, java.util.List<SequenceView> sequences) {}

    /**
     * The sequences of a validated {@link #cached} call: batch entry {@code b}'s rows against its first
     * {@code cacheLens[b]} keys.
     *
     * @param q queries {@code [B, Hq, Sq, D]}
     * @param kCache the key cache {@code [B, Hkv, capacity, D]}
     * @param vCache the value cache {@code [B, Hkv, capacity, Dv]}
     * @param cacheLens cached tokens of each batch entry, {@code 0 <= cacheLens[b] <= capacity}
     * @param out receives the output {@code [B, Hq, Sq, Dv]}
     * @param lse receives each row's log-sum-exp, F32 {@code [B, Hq, Sq, 1]}; null when not wanted
     * @return one view per batch entry
     */
    public static java.util.List<SequenceView> cachedSequences(
            Tensor q, Tensor kCache, Tensor vCache, int[] cacheLens, Tensor out, Tensor lse) {
        java.util.List<SequenceView> views = new java.util.ArrayList<>(q.batch());
        for (int b = 0; b < q.batch(); b++) {
            int len = cacheLens[b];
            views.add(new SequenceView(
                    q.sequence(b, 0, q.seqLen()),
                    len == 0 ? null : kCache.sequence(b, 0, len),
                    len == 0 ? null : vCache.sequence(b, 0, len),
                    out.sequence(b, 0, q.seqLen()),
                    lse == null ? null : lse.sequence(b, 0, q.seqLen()),
                    b));
        }
        return views;
    }

    /** The sequences of a validated {@link #varlen} call that have query rows. */
    private static java.util.List<SequenceView> varlenSequences(
            Tensor q, Tensor k, Tensor v, int[] cuSeqlensQ, int[] cuSeqlensK, Tensor out, Tensor lse) {
        java.util.List<SequenceView> views = new java.util.ArrayList<>(cuSeqlensQ.length - 1);
        for (int s = 0; s + 1 < cuSeqlensQ.length; s++) {
            int q0 = cuSeqlensQ[s];
            int k0 = cuSeqlensK[s];
            int rows = cuSeqlensQ[s + 1] - q0;
            int keys = cuSeqlensK[s + 1] - k0;
            if (rows > 0) {
                views.add(new SequenceView(
                        q.sequence(0, q0, rows),
                        keys == 0 ? null : k.sequence(0, k0, keys),
                        keys == 0 ? null : v.sequence(0, k0, keys),
                        out.sequence(0, q0, rows),
                        lse == null ? null : lse.sequence(0, q0, rows),
                        s));
            }
        }
        return views;
    }

    /**
     * The rules every call against key and value caches shares, in order: an output, the built-in options only (no
     * masks, no dropout), every tensor reachable, and the value cache's blocks, heads and rows equal to the key
     * cache's ({@code dims} names those three of {@code layout}). Returns the shapes text its messages end with.
     */
    private static String checkCaches(
            Tensor q,
            Tensor kCache,
            Tensor vCache,
            Tensor out,
            AttentionOptions options,
            String call,
            String layout,
            String dims) {
        Objects.requireNonNull(out, "out");
        rejectMasks(options, call);
        rejectDropout(options, call);
        TensorChecks.checkAccessible(
                new NamedTensor("q", q), new NamedTensor("kCache", kCache), new NamedTensor("vCache", vCache));
        String shapes = " (q " + q.shapeString() + ", kCache " + kCache.shapeString() + ", vCache "
                + vCache.shapeString() + "; caches are " + layout + ")";
        if (vCache.batch() != kCache.batch()
                || vCache.heads() != kCache.heads()
                || vCache.seqLen() != kCache.seqLen()) {
            throw new IllegalArgumentException("vCache: " + dims + " must equal kCache's" + shapes);
        }
        return shapes;
    }

    /** A copy of block tables: rows copied, null rows kept null (and rejected by validation). */
    private static int[][] copyOf(int[][] blockTables) {
        int[][] copy = new int[blockTables.length][];
        for (int b = 0; b < copy.length; b++) {
            copy[b] = blockTables[b] == null ? null : blockTables[b].clone();
        }
        return copy;
    }

    /**
     * Dense masks, biases, block masks and mods index positions of one call ({@code b, h, i, j}), which
     * per-sequence calls would renumber; the serving entry points take the built-in options only.
     */
    private static void rejectMasks(AttentionOptions options, String call) {
        Objects.requireNonNull(options, "options");
        if (options.hasMasksOrScoreMods()) {
            throw new IllegalArgumentException("options: masks, biases, MaskMods and ScoreMods are not supported by "
                    + call + " attention (their positions are a whole call's, not a sequence's); use causal, window,"
                    + " softcap and ALiBi, which apply per sequence");
        }
    }

    /** Dropout is a training feature: of the serving entry points only the packed one, which has a backward, takes it. */
    private static void rejectDropout(AttentionOptions options, String call) {
        if (options.hasDropout()) {
            throw new IllegalArgumentException("options.dropout: dropout is a training feature and is not supported by "
                    + call + " attention; use forward or forwardVarlen (and their backward)");
        }
    }

    /**
     * Copies of a packed call's offsets (null kept null, and rejected by {@link #checkPacked}), taken before
     * anything else so that validation and the kernels read the same arrays; and the packed calls' option rule.
     */
    private static PackedSequences copyOffsets(PackedSequences packed, AttentionOptions options) {
        Objects.requireNonNull(packed, "packed");
        int[] cuSeqlensQ =
                packed.cuSeqlensQ() == null ? null : packed.cuSeqlensQ().clone();
        int[] cuSeqlensK =
                packed.cuSeqlensK() == null ? null : packed.cuSeqlensK().clone();
        rejectMasks(options, "packed variable-length");
        return new PackedSequences(cuSeqlensQ, cuSeqlensK);
    }

    /** The rules of packed offsets against the validated packed shape (batch 1, totals from q's and k's rows). */
    private static void checkPacked(AttentionShape shape, Tensor q, int[] cuSeqlensQ, int[] cuSeqlensK) {
        if (shape.batch() != 1) {
            throw new IllegalArgumentException("q: batch must be 1 for packed sequences (they are told apart by "
                    + "cuSeqlensQ/cuSeqlensK), got " + q.shapeString());
        }
        checkOffsets("cuSeqlensQ", cuSeqlensQ, shape.queryLen(), "q");
        checkOffsets("cuSeqlensK", cuSeqlensK, shape.keyLen(), "k");
        if (cuSeqlensQ.length != cuSeqlensK.length) {
            throw new IllegalArgumentException("cuSeqlensK: length " + cuSeqlensK.length + " must equal cuSeqlensQ's "
                    + cuSeqlensQ.length + " (one offset per sequence, plus one)");
        }
    }

    private static void checkOffsets(String name, int[] cu, int total, String tensor) {
        Objects.requireNonNull(cu, name);
        if (cu.length < 2 || cu[0] != 0 || cu[cu.length - 1] != total) {
            throw new IllegalArgumentException(name + ": must hold at least 2 offsets, start at 0 and end at " + tensor
                    + "'s packed length " + total + ", got " + abbreviate(cu));
        }
        for (int s = 1; s < cu.length; s++) {
            if (cu[s] < cu[s - 1]) {
                throw new IllegalArgumentException(name + "[" + s + "]: " + cu[s] + " is below " + name + "[" + (s - 1)
                        + "] " + cu[s - 1] + "; offsets must not decrease");
            }
        }
    }

    private static String abbreviate(int[] a) {
        return a.length <= 16 ? Arrays.toString(a) : Arrays.toString(Arrays.copyOf(a, 16)) + "... (" + a.length + ")";
    }
}
