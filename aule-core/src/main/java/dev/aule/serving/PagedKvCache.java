package dev.aule.serving;

import dev.aule.Attention;
import dev.aule.AttentionOptions;
import dev.aule.AttentionResult;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.PagedKv;
import dev.aule.spi.QuantizedKv;
import dev.aule.spi.ServingPredicates;
import dev.aule.spi.ServingShapes;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.Objects;

/**
 * A paged key/value cache: a fixed pool of blocks of {@code blockSize} tokens, and per sequence a
 * block table mapping its positions to blocks, as in vLLM. Sequences grow a block at a time, so
 * memory follows the tokens actually cached instead of a maximum length per request.
 *
 * <p>Storage: keys {@code [numBlocks, Hkv, blockSize, D]} and values {@code [numBlocks, Hkv,
 * blockSize, Dv]} in F32, F16 or BF16, each one Java array when it fits in one (else native memory;
 * see {@link KvCache#allocate(DType, int, int, int, int, int)}), laid out head-major ({@code [Hkv][numBlocks]
 * [blockSize][D]} in memory): one head's rows of adjacent blocks are adjacent, and the allocator
 * gives a sequence adjacent blocks where it can (the block after its last when free, else the
 * middle of the longest free run), so attention reads a
 * sequence's keys in long runs, almost as from a contiguous cache: F32 runs in place, F16 and BF16
 * runs widened to float a vector at a time.
 *
 * <p>Prefix sharing: {@link #fork} makes a sequence that shares every block of its parent (blocks
 * are reference-counted). Full blocks are never written again, so they stay shared; the first append
 * into a shared partial last block copies it first (copy-on-write). {@link #free} returns a
 * sequence's blocks whose count drops to zero.
 *
 * <p>Failure leaves the cache unchanged: an append that needs more blocks than are free throws
 * {@link KvCacheFullException} before anything is written, so a scheduler can preempt and retry.
 *
 * <p>Not thread-safe: one thread (the scheduler) owns it; attention itself runs on all cores.
 */
public final class PagedKvCache {
    private final Tensor keys;
    private final Tensor values;
    private final int blockSize;
    private final BlockAllocator blocks;
    private final Map<Integer, Sequence> sequences = new HashMap<>();
    private int nextId;
    private boolean keySummaries;
    // A quantized pool's codes and scales; null for F32/F16/BF16 pools, which keys and values hold.
    private final QuantizedPool quant;
    // The device copy of the pools for a cache created with a backend that holds device memory; else null.
    private DeviceMirror device;

    /**
     * A sequence's block table and length. Under a {@link StreamingPolicy} ({@code window > 0}) the table holds the
     * {@code sinkBlocks} blocks of the sink region, then the kept window blocks, the first of which starts at
     * position {@code windowStart}; released blocks leave the table. Position {@code p} is then in
     * {@code blocks[p / blockSize]} below {@code windowStart}, else in {@code blocks[sinkBlocks + (p - windowStart) /
     * blockSize]}. Without a policy {@code sinkBlocks = windowStart = window = 0}, which is the plain
     * {@code blocks[p / blockSize]}. Invariants: {@code windowStart} is a multiple of the block size and at least
     * {@code sinkBlocks * blockSize}; the kept tokens are positions {@code [0, min(length, sinkBlocks * blockSize))}
     * and {@code [windowStart, length)}, stored one after another in table order.
     */
    private static final class Sequence {
        int[] blocks = new int[4];
        int blockCount;
        int length;
        /** Per-block key summaries for sparse decode; null unless {@link #enableKeySummaries()} was called. */
        KeySummaries summaries;

        int sinkBlocks;
        int windowStart;
        int window;

        Sequence copy() {
            Sequence s = new Sequence();
            s.blocks = blocks.clone();
            s.blockCount = blockCount;
            s.length = length;
            s.summaries = summaries == null ? null : summaries.copy();
            s.sinkBlocks = sinkBlocks;
            s.windowStart = windowStart;
            s.window = window;
            return s;
        }

        /** Index in {@link #blocks} of the block holding position {@code p} (a kept or the next position). */
        int blockIndex(int p, int blockSize) {
            return p < windowStart ? p / blockSize : sinkBlocks + (p - windowStart) / blockSize;
        }

        /** Tokens attention sees: the sink region's that exist, then the window's. */
        int kept(int blockSize) {
            return Math.min(length, sinkBlocks * blockSize) + Math.max(0, length - windowStart);
        }
    }

    /**
     * Token and memory accounting.
     *
     * @param totalBlocks blocks in the pool
     * @param usedBlocks blocks held by at least one sequence
     * @param freeBlocks blocks available to appends
     * @param sequences live sequences
     * @param tokens tokens kept over all sequences (a shared prefix counted once per sequence; under a
     *     {@link StreamingPolicy} the kept ones)
     * @param bytesPerBlock key and value bytes of one block
     */
    public record Usage(
            int totalBlocks, int usedBlocks, int freeBlocks, int sequences, long tokens, long bytesPerBlock) {
        /**
         * Key and value bytes of the blocks in use.
         *
         * @return the key and value bytes of the blocks in use
         */
        public long bytesUsed() {
            return usedBlocks * bytesPerBlock;
        }

        /**
         * Key and value bytes of the whole pool.
         *
         * @return the key and value bytes of the whole pool
         */
        public long bytesTotal() {
            return totalBlocks * bytesPerBlock;
        }
    }

    private PagedKvCache(DType dtype, int numBlocks, int blockSize, int kvHeads, int headDim, int valueDim) {
        for (int dim : new int[] {headDim, valueDim}) {
            if (poolElementsOrMinusOne(numBlocks, kvHeads, blockSize, dim) < 0) {
                throw new IllegalArgumentException("numBlocks, blockSize, kvHeads, headDim, valueDim: "
                        + Arrays.toString(new int[] {numBlocks, blockSize, kvHeads, headDim, valueDim})
                        + " make a pool of more than 2^63-1 elements, which no memory holds");
            }
        }
        this.keys = headMajorPool(dtype, numBlocks, kvHeads, blockSize, headDim);
        this.values = headMajorPool(dtype, numBlocks, kvHeads, blockSize, valueDim);
        this.blockSize = blockSize;
        this.blocks = new BlockAllocator(numBlocks);
        this.quant = null;
    }

    private PagedKvCache(QuantizedPool quant) {
        this.keys = null;
        this.values = null;
        this.blockSize = quant.blockSize;
        this.blocks = new BlockAllocator(quant.numBlocks);
        this.quant = quant;
    }

    /**
     * A pool in any {@link KvFormat}: F32, F16 and BF16 as {@link #create(DType, int, int, int, int, int)}; INT8
     * with a key and a value scale per (block, KV head); FP8 with scale 1 (see
     * {@link #create(KvFormat, float[], float[], int, int, int, int, int)}).
     *
     * @param format how keys and values are stored
     * @param numBlocks blocks in the pool, at least 1
     * @param blockSize tokens per block, at least 1
     * @param kvHeads KV heads {@code Hkv} of every block, at least 1
     * @param headDim elements {@code D} per key row, at least 1
     * @param valueDim elements {@code Dv} per value row, at least 1
     * @return the pool, every block free
     */
    public static PagedKvCache create(
            KvFormat format, int numBlocks, int blockSize, int kvHeads, int headDim, int valueDim) {
        return create(format, null, null, numBlocks, blockSize, kvHeads, headDim, valueDim);
    }

    /**
     * A pool in {@code format} with FP8 descale factors (vLLM's {@code k_scale}, {@code v_scale}): a key {@code x}
     * of head {@code h} is stored as {@code fp8(x / keyScales[h])} and read as {@code fp8 * keyScales[h]}.
     * Quantized pools keep codes and scales in Java arrays (at most 2^31-9 codes each for keys and for values),
     * head-major as the other pools.
     *
     * @param format how keys and values are stored
     * @param keyScales FP8 only: one scale (per tensor) or one per KV head, finite and positive; null for 1 (and
     *     for every other format)
     * @param valueScales the same for values
     * @param numBlocks blocks in the pool, at least 1
     * @param blockSize tokens per block, at least 1
     * @param kvHeads KV heads {@code Hkv} of every block, at least 1
     * @param headDim elements {@code D} per key row, at least 1
     * @param valueDim elements {@code Dv} per value row, at least 1
     * @return the pool, every block free
     * @throws IllegalArgumentException when an extent is below 1, the scales break a rule above, or the pool is
     *     too large
     */
    public static PagedKvCache create(
            KvFormat format,
            float[] keyScales,
            float[] valueScales,
            int numBlocks,
            int blockSize,
            int kvHeads,
            int headDim,
            int valueDim) {
        Objects.requireNonNull(format, "format");
        int[] extents = {numBlocks, blockSize, kvHeads, headDim, valueDim};
        for (int extent : extents) {
            if (extent < 1) {
                throw new IllegalArgumentException(
                        "numBlocks, blockSize, kvHeads, headDim, valueDim: must be >= 1, got "
                                + Arrays.toString(extents));
            }
        }
        float[] ks = QuantizedPool.checkScales("keyScales", keyScales, format, kvHeads);
        float[] vs = QuantizedPool.checkScales("valueScales", valueScales, format, kvHeads);
        if (!format.quantized()) {
            return create(format.dtype(), numBlocks, blockSize, kvHeads, headDim, valueDim);
        }
        return new PagedKvCache(new QuantizedPool(format, numBlocks, blockSize, kvHeads, headDim, valueDim, ks, vs));
    }

    /**
     * {@code [numBlocks, Hkv, blockSize, dim]} stored head-major ({@code [Hkv][numBlocks][blockSize][dim]}):
     * a head's rows of adjacent blocks are adjacent, so a run of a sequence's blocks is read as one.
     */
    private static Tensor headMajorPool(DType dtype, int numBlocks, int kvHeads, int blockSize, int dim) {
        long perHead = (long) numBlocks * blockSize * dim; // fits: the constructor checked the whole pool
        long count = perHead * kvHeads;
        MemorySegment memory = KvCache.storage(dtype, count);
        return Tensor.of(memory, dtype, new long[] {numBlocks, kvHeads, blockSize, dim}, new long[] {
            (long) blockSize * dim, perHead, dim, 1
        });
    }

    /** {@code numBlocks * kvHeads * blockSize * dim}, or -1 when it passes {@code Long.MAX_VALUE}. */
    private static long poolElementsOrMinusOne(int numBlocks, int kvHeads, int blockSize, int dim) {
        try {
            return Math.multiplyExact(
                    Math.multiplyExact((long) numBlocks, blockSize), Math.multiplyExact((long) kvHeads, dim));
        } catch (ArithmeticException e) {
            return -1;
        }
    }

    /**
     * A pool of {@code numBlocks} blocks of {@code blockSize} tokens (16 and 32 are usual), each holding
     * {@code kvHeads} heads of keys of {@code headDim} and values of {@code valueDim} elements.
     *
     * @param dtype the element type
     * @param numBlocks blocks in the pool, at least 1
     * @param blockSize tokens per block, at least 1
     * @param kvHeads KV heads {@code Hkv} of every block, at least 1
     * @param headDim elements {@code D} per key row, at least 1
     * @param valueDim elements {@code Dv} per value row, at least 1
     * @return the pool, every block free
     */
    public static PagedKvCache create(
            DType dtype, int numBlocks, int blockSize, int kvHeads, int headDim, int valueDim) {
        Objects.requireNonNull(dtype, "dtype");
        int[] extents = {numBlocks, blockSize, kvHeads, headDim, valueDim};
        for (int extent : extents) {
            if (extent < 1) {
                throw new IllegalArgumentException(
                        "numBlocks, blockSize, kvHeads, headDim, valueDim: must be >= 1, got "
                                + Arrays.toString(extents));
            }
        }
        return new PagedKvCache(dtype, numBlocks, blockSize, kvHeads, headDim, valueDim);
    }

    /**
     * A pool whose blocks also live in {@code backend}'s memory (a GPU's, for {@code vulkan}), so attention reads
     * them there: each append writes its rows (rotated by RoPE on the host) to the host pool and uploads only those
     * rows, a copy-on-write uploads the copied block, and a call uploads only q, the block tables and the lengths.
     * Forks, frees and block reuse work as on the host; the host pool stays the truth ({@link #keyBlocks},
     * {@link #dequantizedKeys} read it), and calls whose options the backend lacks (per-batch ALiBi, dropout, a head
     * dim over its limit), packed and sparse attention run on it as for a host pool. With a backend that computes
     * in host memory ({@code cpu}) this is {@link #create(KvFormat, int, int, int, int, int)}. {@link #close()}
     * frees the device memory. Calls on the device copy run on {@code backend} whatever backend is forced.
     *
     * @param backend where the device copy lives
     * @param format F32, F16 or BF16
     * @param numBlocks blocks in the pool, at least 1
     * @param blockSize tokens per block, at least 1
     * @param kvHeads KV heads {@code Hkv} of every block, at least 1
     * @param headDim elements {@code D} per key row, at least 1
     * @param valueDim elements {@code Dv} per value row, at least 1
     * @return the pool, every block free
     * @throws IllegalArgumentException when an extent is below 1, the format is quantized (device pools hold no
     *     codes), or the device cannot hold the pool
     */
    public static PagedKvCache create(
            AttentionBackend backend,
            KvFormat format,
            int numBlocks,
            int blockSize,
            int kvHeads,
            int headDim,
            int valueDim) {
        DeviceMirror.checkFormat(format, backend);
        PagedKvCache cache = create(format.dtype(), numBlocks, blockSize, kvHeads, headDim, valueDim);
        cache.device = DeviceMirror.allocate(backend, cache.keys, cache.values);
        return cache;
    }

    /**
     * Whether the blocks also live in a backend's memory ({@link #create(AttentionBackend, KvFormat, int, int, int,
     * int, int)}), until {@link #close()}.
     *
     * @return the backend's name, or null for a host pool
     */
    public String deviceBackend() {
        return device == null ? null : device.backend();
    }

    /**
     * The bytes of the pools in the backend's memory (in addition to {@link Usage#bytesTotal()} on the host).
     *
     * @return the bytes, 0 for a host pool or once closed
     */
    public long deviceBytes() {
        return device == null ? 0 : device.bytes();
    }

    /**
     * Frees the device copy of a pool created with a backend; the pool stays usable, on its host memory.
     * Idempotent; nothing to do for a host pool.
     */
    public void close() {
        if (device != null) {
            device.close();
        }
    }

    /**
     * {@link #create(DType, int, int, int, int, int)} with {@code Dv = D}.
     *
     * @param dtype the element type
     * @param numBlocks blocks in the pool, at least 1
     * @param blockSize tokens per block, at least 1
     * @param kvHeads KV heads {@code Hkv} of every block, at least 1
     * @param headDim elements {@code D} per key and value row, at least 1
     * @return the pool, every block free
     */
    public static PagedKvCache create(DType dtype, int numBlocks, int blockSize, int kvHeads, int headDim) {
        return create(dtype, numBlocks, blockSize, kvHeads, headDim, headDim);
    }

    /**
     * Blocks a pool needs to hold {@code tokens} tokens of one sequence.
     *
     * @param tokens tokens to hold, at least 0
     * @param blockSize tokens per block, at least 1
     * @return the blocks, {@code ceil(tokens / blockSize)}
     * @throws IllegalArgumentException when {@code tokens} is negative or needs more than {@link Integer#MAX_VALUE}
     *     blocks, or {@code blockSize} is below 1
     */
    public static int blocksFor(long tokens, int blockSize) {
        if (tokens < 0 || blockSize < 1) {
            throw new IllegalArgumentException(
                    "tokens, blockSize: need tokens >= 0 and blockSize >= 1, got " + tokens + " and " + blockSize);
        }
        long blocks = Math.ceilDiv(tokens, blockSize); // tokens + blockSize - 1 could pass Long.MAX_VALUE
        if (blocks > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("tokens: " + tokens + " need " + blocks + " blocks of " + blockSize
                    + ", more than a block table holds (2^31-1)");
        }
        return (int) blocks;
    }

    /** {@return the tokens per block} */
    public int blockSize() {
        return blockSize;
    }

    /** {@return the blocks in the pool} */
    public int numBlocks() {
        return blocks.total();
    }

    /** {@return the KV heads {@code Hkv}} */
    public int kvHeads() {
        return quant != null ? quant.kvHeads : keys.heads();
    }

    /** {@return the elements {@code D} of each key row} */
    public int headDim() {
        return quant != null ? quant.headDim : keys.headDim();
    }

    /** {@return the elements {@code Dv} of each value row} */
    public int valueDim() {
        return quant != null ? quant.valueDim : values.headDim();
    }

    /**
     * The element type of an F32, F16 or BF16 pool.
     *
     * @return the element type
     * @throws IllegalStateException for a quantized pool (see {@link #format()})
     */
    public DType dtype() {
        requireTensors();
        return keys.dtype();
    }

    /** {@return how keys and values are stored} */
    public KvFormat format() {
        return quant != null ? quant.format : KvFormat.of(keys.dtype());
    }

    /**
     * The key pool {@code [numBlocks, Hkv, blockSize, D]}: what {@link Attention#forwardPaged} reads.
     *
     * @return the key pool
     * @throws IllegalStateException for a quantized pool, whose codes are no tensor (see {@link #dequantizedKeys})
     */
    public Tensor keyBlocks() {
        requireTensors();
        return keys;
    }

    /**
     * The value pool {@code [numBlocks, Hkv, blockSize, Dv]}.
     *
     * @return the value pool
     * @throws IllegalStateException for a quantized pool (see {@link #dequantizedValues})
     */
    public Tensor valueBlocks() {
        requireTensors();
        return values;
    }

    private void requireTensors() {
        if (quant != null) {
            throw new IllegalStateException("a " + quant.format + " pool stores codes and scales, not tensors;"
                    + " read a sequence with dequantizedKeys and dequantizedValues");
        }
    }

    /**
     * The cached keys of {@code seq} as attention reads them (dequantized for a quantized pool), F32
     * {@code [1, Hkv, length, D]}; a copy, null while the sequence is empty.
     *
     * @param seq a live sequence id
     * @return its keys
     */
    public Tensor dequantizedKeys(int seq) {
        return readBack(true, sequence(seq, "seq"));
    }

    /**
     * The cached values of {@code seq} as attention reads them, F32 {@code [1, Hkv, length, Dv]}; a copy, null while the sequence is empty.
     *
     * @param seq a live sequence id
     * @return its values
     */
    public Tensor dequantizedValues(int seq) {
        return readBack(false, sequence(seq, "seq"));
    }

    private Tensor readBack(boolean key, Sequence s) {
        if (s.length == 0) {
            return null;
        }
        if (quant != null) {
            return quant.dequantized(key, Arrays.copyOf(s.blocks, s.blockCount), s.length);
        }
        Tensor pool = key ? keys : values;
        Tensor t = Tensor.allocate(DType.F32, 1, pool.heads(), s.length, pool.headDim());
        float[] row = new float[pool.headDim()];
        for (int h = 0; h < pool.heads(); h++) {
            for (int j = 0; j < s.length; j++) {
                pool.readRow(s.blocks[j / blockSize], h, j % blockSize, row, 0);
                t.writeRow(0, h, j, row, 0);
            }
        }
        return t;
    }

    /**
     * Starts an empty sequence; returns its id. Takes no block until the first append.
     *
     * @return the new sequence id
     */
    public int newSequence() {
        int id = nextId++;
        Sequence s = new Sequence();
        if (keySummaries) {
            s.summaries = new KeySummaries(kvHeads(), headDim());
        }
        sequences.put(id, s);
        return id;
    }

    /**
     * Starts an empty sequence under a StreamingLLM policy: it keeps its first {@code policy.sinkTokens()} tokens
     * (rounded up to whole blocks) and its most recent {@code policy.window()} tokens (the blocks holding them), and
     * each append releases the blocks wholly between, back to the pool, where later appends reuse them; so a
     * generation of any length holds at most {@link StreamingPolicy#maxBlocks} blocks. Attention
     * ({@link #attention}, {@link #attentionVarlen}) sees exactly the kept tokens, in position order;
     * {@link #length} stays the count of tokens appended (the next token's position) and {@link #keptTokens} says
     * how many are kept.
     *
     * <p>Positions: keys keep the positions they were appended at (an append with a {@link Rope} rotates each key to
     * its position in the sequence, once). StreamingLLM instead re-rotates the kept keys to their places within
     * the cache; here a query at position {@code p} sees kept keys at their true distances, and no stored key is
     * ever rewritten (blocks stay shareable between forks). The RoPE table must then cover every position a
     * generation reaches.
     *
     * <p>A prefill chunk longer than the window drops its own first tokens before it attends: append and attend in
     * chunks of at most {@code window} tokens. Forks inherit the policy and share blocks as usual.
     *
     * @param policy the sink tokens and window to keep
     * @return the new sequence id
     */
    public int newSequence(StreamingPolicy policy) {
        Objects.requireNonNull(policy, "policy");
        requirePlain("a streaming sequence");
        Sequence s = new Sequence();
        s.window = policy.window();
        s.sinkBlocks = policy.sinkBlocks(blockSize);
        s.windowStart = s.sinkBlocks * blockSize;
        int id = nextId++;
        sequences.put(id, s);
        return id;
    }

    /**
     * Tokens of {@code seq} attention sees: its length without a policy; under a {@link StreamingPolicy} the
     * sink region and the kept window.
     *
     * @param seq a live sequence id
     * @return the kept tokens
     */
    public int keptTokens(int seq) {
        return sequence(seq, "seq").kept(blockSize);
    }

    /**
     * The first position of the kept window of {@code seq}: the tokens attention sees are positions {@code [0,
     * min(length, sinkBlocks * blockSize))} and {@code [windowStart(seq), length)} (the first is empty without a
     * policy, whose window starts at 0).
     *
     * @param seq a live sequence id
     * @return the position where the kept window starts
     */
    public int windowStart(int seq) {
        return sequence(seq, "seq").windowStart;
    }

    /**
     * A new sequence with the same tokens as {@code parent}, sharing all its blocks (a shared system
     * prompt, parallel sampling, beam search). Costs no block until one of them appends into a shared
     * partial block.
     *
     * @param parent a live sequence id
     * @return the new sequence id
     */
    public int fork(int parent) {
        Sequence child = sequence(parent, "parent").copy();
        for (int i = 0; i < child.blockCount; i++) {
            blocks.retain(child.blocks[i]);
        }
        int id = nextId++;
        sequences.put(id, child);
        return id;
    }

    /**
     * Ends a sequence; blocks no other sequence shares go back to the pool.
     *
     * @param seq a live sequence id
     */
    public void free(int seq) {
        Sequence s = sequence(seq, "seq");
        sequences.remove(seq);
        for (int i = s.blockCount - 1; i >= 0; i--) {
            blocks.release(s.blocks[i]);
        }
    }

    /**
     * Whether {@code seq} is a live sequence.
     *
     * @param seq a sequence id
     * @return true while it is live
     */
    public boolean contains(int seq) {
        return sequences.containsKey(seq);
    }

    /**
     * Cached tokens of {@code seq}: all tokens appended to it, the position of the next (under a
     * {@link StreamingPolicy}, more than {@link #keptTokens} once it drops tokens).
     *
     * @param seq a live sequence id
     * @return its cached tokens
     */
    public int length(int seq) {
        return sequence(seq, "seq").length;
    }

    /**
     * The blocks of {@code seq}, in position order (a copy): what attention reads, so under a
     * {@link StreamingPolicy} the sink blocks and then the kept window's.
     *
     * @param seq a live sequence id
     * @return the block ids
     */
    public int[] blockTable(int seq) {
        Sequence s = sequence(seq, "seq");
        return Arrays.copyOf(s.blocks, s.blockCount);
    }

    /**
     * How many sequences share {@code block} (0: free).
     *
     * @param block a block id, {@code 0 <= block < numBlocks}
     * @return the count
     */
    public int references(int block) {
        return blocks.references(Objects.checkIndex(block, blocks.total()));
    }

    /** {@return the blocks, sequences, tokens and bytes in use now} */
    public Usage usage() {
        long tokens = 0;
        for (Sequence s : sequences.values()) {
            tokens += s.kept(blockSize);
        }
        long bytesPerBlock = quant != null
                ? quant.bytesPerBlock()
                : (long) blockSize * kvHeads() * ((long) headDim() + valueDim()) * dtype().byteSize();
        return new Usage(
                numBlocks(), numBlocks() - blocks.free(), blocks.free(), sequences.size(), tokens, bytesPerBlock);
    }

    /**
     * Blocks an append of {@code tokens} tokens to {@code seq} would take from the pool (copy-on-write included).
     *
     * @param seq a live sequence id
     * @param tokens tokens to append, at least 0
     * @return the blocks
     */
    public int blocksNeeded(int seq, int tokens) {
        if (tokens < 0) {
            throw new IllegalArgumentException("tokens: must be >= 0, got " + tokens);
        }
        return blocksNeeded(sequence(seq, "seq"), tokens);
    }

    private int blocksNeeded(Sequence s, int tokens) {
        if (tokens == 0) {
            return 0;
        }
        boolean copyOnWrite = s.length % blockSize != 0 && blocks.references(s.blocks[s.blockCount - 1]) > 1;
        if (s.window > 0) {
            return streamingBlocksNeeded(s, tokens, copyOnWrite);
        }
        int grow = blocksFor((long) s.length + tokens, blockSize) - s.blockCount;
        return grow + (copyOnWrite ? 1 : 0);
    }

    /**
     * The most free blocks a streaming append of {@code tokens} takes at once: it replays {@link #append}'s takes
     * and releases (a release frees a block only when no other sequence holds it: the blocks it took itself, its
     * copied last block, unshared ones) and returns the peak of taken minus freed.
     */
    private int streamingBlocksNeeded(Sequence s, int tokens, boolean copyOnWrite) {
        int net = copyOnWrite ? 1 : 0;
        int peak = net;
        int length = s.length;
        int windowStart = s.windowStart;
        int first = s.sinkBlocks; // index of the first window block, in the table extended by the blocks taken
        int count = s.blockCount;
        for (int t = 0; t < tokens; t++) {
            int position = length;
            while (count > s.sinkBlocks && windowStart + blockSize <= position + 1 - s.window) {
                boolean own = first >= s.blockCount
                        || copyOnWrite && first == s.blockCount - 1
                        || blocks.references(s.blocks[first]) == 1;
                net -= own ? 1 : 0;
                first++;
                count--;
                windowStart += blockSize;
            }
            if (position % blockSize == 0) {
                count++;
                peak = Math.max(peak, ++net);
            }
            length++;
        }
        return peak;
    }

    /**
     * Before position {@code position} is written: releases the window blocks all of whose tokens are older than the
     * {@code window} most recent once it is (they end at or before {@code position + 1 - window}, so they are full
     * and never the block being written).
     */
    private void releaseOutsideWindow(Sequence s, int position) {
        while (s.blockCount > s.sinkBlocks && s.windowStart + blockSize <= position + 1 - s.window) {
            blocks.release(s.blocks[s.sinkBlocks]);
            System.arraycopy(s.blocks, s.sinkBlocks + 1, s.blocks, s.sinkBlocks, s.blockCount - s.sinkBlocks - 1);
            s.blockCount--;
            s.windowStart += blockSize;
        }
    }

    /**
     * Appends k {@code [1, Hkv, n, D]} and v {@code [1, Hkv, n, Dv]} to {@code seq}.
     *
     * @param seq a live sequence id
     * @param k keys {@code [1, Hkv, n, D]} of the {@code n} new tokens
     * @param v values {@code [1, Hkv, n, Dv]} of the same tokens
     */
    public void append(int seq, Tensor k, Tensor v) {
        append(new int[] {seq}, k, v, null);
    }

    /**
     * Appends to {@code seq}, rotating each key by {@code rope} to its position in the sequence.
     *
     * @param seq a live sequence id
     * @param k keys {@code [1, Hkv, n, D]} of the {@code n} new tokens
     * @param v values {@code [1, Hkv, n, Dv]} of the same tokens
     * @param rope rotates each key to its position in the sequence
     */
    public void append(int seq, Tensor k, Tensor v, Rope rope) {
        append(new int[] {seq}, k, v, rope);
    }

    /**
     * Appends batch entry {@code i} of k {@code [seqs.length, Hkv, n, D]} and v to sequence {@code seqs[i]}
     * (a decode step appends one token to each running sequence), rotating keys by {@code rope} when not
     * null. All or nothing: unknown or repeated ids, bad shapes, positions past the RoPE table or too few
     * free blocks change nothing. The blocks needed are counted per sequence before any copy, so when two
     * sequences of one call share a partial last block, both count a copy although the second then
     * writes in place: such a call may be refused with one block to spare.
     *
     * @param seqs live sequence ids, one per batch entry, all distinct
     * @param k keys {@code [seqs.length, Hkv, n, D]} of the {@code n} new tokens
     * @param v values {@code [seqs.length, Hkv, n, Dv]} of the same tokens
     * @param rope rotates each key to its position in its sequence; null to store keys as they are
     * @throws KvCacheFullException when the pool has fewer free blocks than the append needs
     */
    public void append(int[] seqs, Tensor k, Tensor v, Rope rope) {
        Objects.requireNonNull(seqs, "seqs");
        CacheRows.checkNew(k, v, seqs.length, kvHeads(), headDim(), valueDim(), rope);
        int n = k.seqLen();
        Sequence[] targets = distinct(seqs);
        long needed = 0;
        for (int i = 0; i < seqs.length; i++) {
            if (rope != null) {
                rope.checkPositions("seqs[" + i + "]", targets[i].length, n);
            }
            if ((long) targets[i].length + n > Integer.MAX_VALUE - blockSize) {
                throw new IllegalArgumentException(
                        "seqs[" + i + "]: " + targets[i].length + " + " + n + " tokens is more than a sequence holds");
            }
            needed += blocksNeeded(targets[i], n);
        }
        if (needed > blocks.free()) {
            throw new KvCacheFullException("appending " + n + " token(s) to " + seqs.length + " sequence(s) needs "
                    + needed + " blocks of " + blockSize + " tokens; " + blocks.free() + " of " + numBlocks()
                    + " are free");
        }
        if (quant != null) {
            appendQuantized(targets, k, v, rope);
            return;
        }
        float[] row = new float[Math.max(headDim(), valueDim())];
        for (int i = 0; i < seqs.length; i++) {
            Sequence s = targets[i];
            if (n > 0) {
                unshareLastBlock(s);
            }
            // The device copy takes each run of rows written into one block, uploaded before the next block is
            // touched (a window may free a block and take it again within one append, so slot 0 starts a run too).
            int runBlock = -1;
            int runStart = 0;
            int runRows = 0;
            for (int t = 0; t < n; t++) {
                int position = s.length;
                if (s.window > 0) {
                    releaseOutsideWindow(s, position); // first, so the block it frees can take this token
                }
                if (position % blockSize == 0) {
                    addBlock(s, blocks.take(s.blockCount == 0 ? -1 : s.blocks[s.blockCount - 1]));
                }
                int block = s.blocks[s.blockIndex(position, blockSize)];
                int slot = position % blockSize;
                if (device != null && (block != runBlock || slot == 0)) {
                    if (runRows > 0) {
                        device.write(runBlock, runStart, runRows);
                    }
                    runBlock = block;
                    runStart = slot;
                    runRows = 0;
                }
                runRows++;
                for (int h = 0; h < kvHeads(); h++) {
                    CacheRows.copy(k, i, h, t, keys, block, slot, row, rope, position);
                    if (s.summaries != null) {
                        summarise(s.summaries, block, position, h, row);
                    }
                    CacheRows.copy(v, i, h, t, values, block, slot, row, null, 0);
                }
                s.length++;
            }
            if (device != null && runRows > 0) {
                device.write(runBlock, runStart, runRows);
            }
        }
        if (device != null) {
            device.flush(); // every row this append changed, copy-on-write copies included, in one transfer
        }
    }

    /**
     * The quantized append, after the checks: every new row is read (and rotated) first, so a non-finite one
     * throws before anything is stored; then each sequence's rows go to its blocks a block's run at a time (an
     * INT8 block's scale set once from all the rows a call writes into it).
     */
    private void appendQuantized(Sequence[] targets, Tensor k, Tensor v, Rope rope) {
        int n = k.seqLen();
        float[][][] newKeys = new float[targets.length][kvHeads()][];
        float[][][] newValues = new float[targets.length][kvHeads()][];
        for (int i = 0; i < targets.length; i++) {
            for (int h = 0; h < kvHeads(); h++) {
                newKeys[i][h] = QuantizedPool.newRows(k, "k", i, h, 0, n, rope, targets[i].length);
                newValues[i][h] = QuantizedPool.newRows(v, "v", i, h, 0, n, null, 0);
            }
        }
        for (int i = 0; i < targets.length; i++) {
            Sequence s = targets[i];
            if (n > 0) {
                unshareLastBlock(s);
            }
            for (int t = 0; t < n; ) {
                int position = s.length;
                if (position % blockSize == 0) {
                    addBlock(s, blocks.take(s.blockCount == 0 ? -1 : s.blocks[s.blockCount - 1]));
                }
                int slot = position % blockSize;
                int run = Math.min(blockSize - slot, n - t);
                int block = s.blocks[position / blockSize];
                for (int h = 0; h < kvHeads(); h++) {
                    quant.write(true, h, block, slot, newKeys[i][h], t * headDim(), run);
                    quant.write(false, h, block, slot, newValues[i][h], t * valueDim(), run);
                }
                s.length += run;
                t += run;
            }
        }
    }

    /** Copy-on-write: a partial last block shared with another sequence is copied before it is written. */
    private void unshareLastBlock(Sequence s) {
        if (s.length % blockSize == 0) {
            return;
        }
        int shared = s.blocks[s.blockCount - 1];
        if (blocks.references(shared) == 1) {
            return;
        }
        int own = blocks.take(s.blockCount >= 2 ? s.blocks[s.blockCount - 2] : -1);
        if (quant != null) {
            quant.copyBlock(shared, own);
        } else {
            copyBlock(keys, shared, own);
            copyBlock(values, shared, own);
            if (device != null) {
                device.write(own, 0, s.length % blockSize); // the rows the sequence sees
            }
        }
        blocks.release(shared);
        s.blocks[s.blockCount - 1] = own;
    }

    /** Copies every head's rows of block {@code from} into block {@code to}. */
    private static void copyBlock(Tensor pool, int from, int to) {
        long[] strides = pool.strides();
        long size = pool.dtype().byteSize();
        long bytes = (long) pool.seqLen() * pool.headDim() * size;
        MemorySegment memory = pool.memory();
        for (int h = 0; h < pool.heads(); h++) {
            long head = h * strides[1];
            MemorySegment.copy(
                    memory, (head + from * strides[0]) * size, memory, (head + to * strides[0]) * size, bytes);
        }
    }

    private static void addBlock(Sequence s, int block) {
        if (s.blockCount == s.blocks.length) {
            s.blocks = Arrays.copyOf(s.blocks, s.blocks.length * 2);
        }
        s.blocks[s.blockCount++] = block;
    }

    /**
     * Attention of q {@code [seqs.length, Hq, Sq, D]} against the cached tokens of each sequence in
     * {@code seqs} (batch entry {@code i} against {@code seqs[i]}), on the best available backend with serving
     * entry points ({@link Backends#selected(java.util.function.Predicate)}): output (q's dtype) and LSE.
     *
     * @param seqs live sequence ids, one per batch entry, all distinct
     * @param q queries {@code [seqs.length, Hq, Sq, D]}
     * @param options masking, scale and the other options of the call
     * @return the output, in q's dtype, and the LSE
     */
    public AttentionResult attention(int[] seqs, Tensor q, AttentionOptions options) {
        Objects.requireNonNull(q, "q");
        AttentionResult result = CacheRows.result(q, valueDim());
        attentionInto(seqs, q, result.out(), result.lse(), options);
        return result;
    }

    /**
     * {@link #attention} into caller-owned {@code out} and {@code lse} (nullable).
     *
     * @param seqs live sequence ids, one per batch entry, all distinct
     * @param q queries {@code [seqs.length, Hq, Sq, D]}
     * @param out receives the output {@code [seqs.length, Hq, Sq, Dv]}
     * @param lse receives each row's log-sum-exp, F32 {@code [seqs.length, Hq, Sq, 1]}; null when not wanted
     * @param options masking, scale and the other options of the call
     */
    public void attentionInto(int[] seqs, Tensor q, Tensor out, Tensor lse, AttentionOptions options) {
        Objects.requireNonNull(seqs, "seqs");
        int[][] tables = new int[seqs.length][];
        int[] lens = new int[seqs.length];
        for (int i = 0; i < seqs.length; i++) {
            Sequence s = sequence(seqs[i], "seqs[" + i + "]");
            tables[i] = Arrays.copyOf(s.blocks, s.blockCount);
            lens[i] = s.kept(blockSize);
        }
        if (quant != null) {
            Backends.selected(ServingPredicates.quantized(q, valueDim(), options))
                    .forwardQuantized(q, quant.view(tables, lens), out, lse, options);
            return;
        }
        if (device != null && device.runs(q, valueDim(), options)) {
            device.ready().forwardPaged(q, tables, lens, out, lse, options);
            return;
        }
        Backends.selected(ServingPredicates.serving(q, valueDim(), options))
                .forwardPaged(q, new PagedKv(keys, values, tables, lens), out, lse, options);
    }

    /** Includes the stored key of (position, head), as the kernel will read it, in the summaries. */
    private void summarise(KeySummaries summaries, int block, int position, int head, float[] row) {
        keys.readRow(block, head, position % blockSize, row, 0);
        summaries.include(position / blockSize, position % blockSize, head, row);
    }

    /**
     * Keeps per-block key summaries (the per-channel minimum and maximum of each block's keys, per KV head) for
     * every sequence from now on, as {@link #sparseAttention} needs; the keys already cached are summarised now.
     * Sequences under a {@link StreamingPolicy} are not summarised (sparse decode refuses them).
     * Costs {@code 2 * headDim} floats per block and KV head (1/16 of an F32 block of 16 tokens' keys and values)
     * and a pass over each appended key. Idempotent.
     */
    public void enableKeySummaries() {
        if (keySummaries) {
            return;
        }
        requirePlain("key summaries for sparse decode");
        float[] row = new float[headDim()];
        for (Sequence s : sequences.values()) {
            if (s.window > 0) {
                continue; // streaming: its table loses blocks, sparse decode does not read it
            }
            s.summaries = new KeySummaries(kvHeads(), headDim());
            for (int position = 0; position < s.length; position++) {
                for (int h = 0; h < kvHeads(); h++) {
                    summarise(s.summaries, s.blocks[position / blockSize], position, h, row);
                }
            }
        }
        keySummaries = true;
    }

    /** {@return whether the cache keeps the key summaries sparse decode reads} */
    public boolean keepsKeySummaries() {
        return keySummaries;
    }

    /**
     * The logical blocks (indices into {@link #blockTable}) each query head of {@code q} would read in a sparse
     * decode step of {@code seq}, in position order: {@code result[h]} for query head {@code h}.
     *
     * @param seq a live sequence id with at least one cached token
     * @param q the step's query {@code [1, Hq, 1, D]}, {@code Hq} a multiple of the cache's KV heads
     * @param budget blocks read per query head
     * @return each query head's blocks
     * @throws IllegalStateException when the cache keeps no key summaries
     */
    public int[][] sparseBlocks(int seq, Tensor q, SparseBudget budget) {
        Objects.requireNonNull(q, "q");
        Objects.requireNonNull(budget, "budget");
        Sequence s = sequence(seq, "seq");
        requireSummaries();
        requireSummarised(s, "seq", seq);
        if (q.batch() != 1 || q.seqLen() != 1 || q.headDim() != headDim() || q.heads() % kvHeads() != 0) {
            throw new IllegalArgumentException("q: must be [1, Hq, 1, " + headDim() + "] with Hq a multiple of the "
                    + kvHeads() + " KV heads, got " + q.shapeString());
        }
        if (s.length == 0) {
            throw new IllegalArgumentException("seq: sequence " + seq + " has no cached tokens to choose from");
        }
        float[] rows = SparseDecoder.queryRows(q)[0];
        return SparseDecoder.choose(s.summaries, s.blockCount, rows, q.heads(), kvHeads(), headDim(), budget);
    }

    /**
     * Query-aware sparse decode (Quest; opt-in, approximate): like {@link #attention} for a decode step
     * ({@code Sq = 1}), but each query head reads only the blocks {@link #sparseBlocks} chooses for it (the
     * {@code budget.recentBlocks()} newest, and the {@code budget.topBlocks()} others whose key summaries bound its
     * scores highest) and those chosen for the other query heads of its KV head, which share one pass over that
     * head's keys. The softmax is exact over the blocks read; a sequence with no more blocks than the budget gets
     * exact attention. Needs {@link #enableKeySummaries()}. Options: causal, scale and softcap; windows, ALiBi,
     * masks and dropout are refused (the keys read are chosen by score, not position).
     *
     * @param seqs live sequence ids, one per batch entry, all distinct
     * @param q the step's queries {@code [seqs.length, Hq, 1, D]}
     * @param budget blocks read per query head
     * @param options masking, scale and softcap of the call
     * @return the output, in q's dtype, and the LSE over the keys read
     * @throws IllegalStateException when the cache keeps no key summaries
     */
    public AttentionResult sparseAttention(int[] seqs, Tensor q, SparseBudget budget, AttentionOptions options) {
        Objects.requireNonNull(q, "q");
        AttentionResult result = CacheRows.result(q, valueDim());
        sparseAttentionInto(seqs, q, budget, result.out(), result.lse(), options);
        return result;
    }

    /**
     * {@link #sparseAttention} into caller-owned {@code out} and {@code lse} (nullable). Every argument is checked
     * as {@link #attentionInto} checks it before anything is written.
     *
     * @param seqs live sequence ids, one per batch entry, all distinct
     * @param q the step's queries {@code [seqs.length, Hq, 1, D]}
     * @param budget blocks read per query head
     * @param out receives the output {@code [seqs.length, Hq, 1, Dv]}
     * @param lse receives each row's log-sum-exp over the keys read, F32 {@code [seqs.length, Hq, 1, 1]}; null
     *     when not wanted
     * @param options masking, scale and softcap of the call
     * @throws IllegalStateException when the cache keeps no key summaries
     */
    public void sparseAttentionInto(
            int[] seqs, Tensor q, SparseBudget budget, Tensor out, Tensor lse, AttentionOptions options) {
        sparseAttentionInto(
                seqs,
                q,
                budget,
                out,
                lse,
                options,
                Backends.selected(ServingPredicates.serving(q, valueDim(), options)));
    }

    /** {@link #sparseAttentionInto} on {@code backend}, which must have serving entry points. */
    void sparseAttentionInto(
            int[] seqs,
            Tensor q,
            SparseBudget budget,
            Tensor out,
            Tensor lse,
            AttentionOptions options,
            AttentionBackend backend) {
        Objects.requireNonNull(seqs, "seqs");
        Objects.requireNonNull(q, "q");
        Objects.requireNonNull(budget, "budget");
        Objects.requireNonNull(options, "options");
        requireSummaries();
        SparseDecoder.checkOptions(options);
        Sequence[] targets = distinct(seqs);
        int[][] tables = new int[seqs.length][];
        int[] lens = new int[seqs.length];
        for (int i = 0; i < seqs.length; i++) {
            requireSummarised(targets[i], "seqs[" + i + "]", seqs[i]);
            tables[i] = Arrays.copyOf(targets[i].blocks, targets[i].blockCount);
            lens[i] = targets[i].length;
        }
        // The whole step is validated as the exact call would be, before the choice reads q.
        ServingShapes.paged(q, new PagedKv(keys, values, tables, lens), out, lse, options, backend.capabilities());
        if (q.seqLen() != 1) {
            throw new IllegalArgumentException(
                    "q: sparse decode takes one query row per sequence (Sq = 1), got " + q.shapeString());
        }
        int heads = q.heads();
        int group = heads / kvHeads();
        float[][] rows = SparseDecoder.queryRows(q);
        int pseudo = seqs.length * kvHeads();
        int[][] pseudoTables = new int[pseudo][];
        int[] pseudoLens = new int[pseudo];
        int numBlocks = numBlocks();
        for (int i = 0; i < seqs.length; i++) {
            Sequence s = targets[i];
            int[][] chosen = s.length == 0
                    ? new int[heads][0]
                    : SparseDecoder.choose(s.summaries, s.blockCount, rows[i], heads, kvHeads(), headDim(), budget);
            int lastFill = s.length - (s.blockCount - 1) * blockSize;
            for (int g = 0; g < kvHeads(); g++) {
                int[] blocksRead = SparseDecoder.union(chosen, g * group, group);
                int[] table = new int[blocksRead.length];
                for (int c = 0; c < table.length; c++) {
                    table[c] = g * numBlocks + s.blocks[blocksRead[c]];
                }
                pseudoTables[i * kvHeads() + g] = table;
                pseudoLens[i * kvHeads() + g] = table.length == 0 ? 0 : (table.length - 1) * blockSize + lastFill;
            }
        }
        Tensor pseudoQ = SparseDecoder.pseudoQueries(q, rows, kvHeads());
        Tensor pseudoOut = Tensor.allocate(out.dtype(), pseudo, group, 1, valueDim());
        Tensor pseudoLse = lse == null ? null : Tensor.allocate(DType.F32, pseudo, group, 1, 1);
        backend.forwardPaged(
                pseudoQ,
                new PagedKv(
                        SparseDecoder.perHeadBlocks(keys),
                        SparseDecoder.perHeadBlocks(values),
                        pseudoTables,
                        pseudoLens),
                pseudoOut,
                pseudoLse,
                options);
        float[] row = new float[valueDim()];
        for (int i = 0; i < seqs.length; i++) {
            for (int h = 0; h < heads; h++) {
                int at = i * kvHeads() + h / group;
                pseudoOut.readRow(at, h % group, 0, row, 0);
                out.writeRow(i, h, 0, row, 0);
                if (lse != null) {
                    lse.set(i, h, 0, 0, pseudoLse.get(at, h % group, 0, 0));
                }
            }
        }
    }

    /** Streaming, sparse decode and packed calls read F32, F16 and BF16 pools; a quantized pool refuses them. */
    private void requirePlain(String feature) {
        if (quant != null) {
            throw new IllegalStateException(feature + " needs an F32, F16 or BF16 pool; this one holds " + quant.format
                    + " codes (attend it with attention())");
        }
    }

    /** A sequence under a streaming policy keeps no summaries: its evicted blocks leave the table. */
    private static void requireSummarised(Sequence s, String name, int id) {
        if (s.summaries == null) {
            throw new IllegalArgumentException(name + ": sequence " + id + " has a streaming policy, which sparse"
                    + " decode does not read (its evicted blocks leave the table; attend it with attention())");
        }
    }

    private void requireSummaries() {
        if (!keySummaries) {
            throw new IllegalStateException(
                    "sparse decode reads key summaries: call enableKeySummaries() on this cache first");
        }
    }

    /** The live sequences of {@code seqs}, each id at most once. */
    private Sequence[] distinct(int[] seqs) {
        Sequence[] targets = new Sequence[seqs.length];
        for (int i = 0; i < seqs.length; i++) {
            targets[i] = sequence(seqs[i], "seqs[" + i + "]");
            for (int j = 0; j < i; j++) {
                if (seqs[j] == seqs[i]) {
                    throw new IllegalArgumentException(
                            "seqs: sequence " + seqs[i] + " appears twice (entries " + j + " and " + i + ")");
                }
            }
        }
        return targets;
    }

    /**
     * Paged attention of packed variable-length queries against this cache ({@link Attention#forwardVarlenPaged}):
     * sequence {@code seqs[s]} is rows {@code [cuSeqlensQ[s], cuSeqlensQ[s+1])} of q {@code [1, Hq, totalQ, D]}
     * against its cached tokens, so one call serves decode steps (1 row) and prefill chunks (many rows, appended
     * first) together. On the best available backend with serving entry points.
     *
     * @param seqs live sequence ids, one per sequence of the call
     * @param q query rows of every sequence {@code [1, Hq, totalQ, D]}
     * @param cuSeqlensQ where each sequence's query rows start, then the total ({@code seqs.length + 1} entries)
     * @param options masking, scale and the other options of the call
     * @return the output {@code [1, Hq, totalQ, Dv]}, in q's dtype, and the LSE
     */
    public AttentionResult attentionVarlen(int[] seqs, Tensor q, int[] cuSeqlensQ, AttentionOptions options) {
        Objects.requireNonNull(q, "q");
        AttentionResult result = CacheRows.result(q, valueDim());
        attentionVarlenInto(seqs, q, cuSeqlensQ, result.out(), result.lse(), options);
        return result;
    }

    /**
     * {@link #attentionVarlen} into caller-owned {@code out} and {@code lse} (nullable).
     *
     * @param seqs live sequence ids, one per sequence of the call
     * @param q query rows of every sequence {@code [1, Hq, totalQ, D]}
     * @param cuSeqlensQ where each sequence's query rows start, then the total ({@code seqs.length + 1} entries)
     * @param out receives the output {@code [1, Hq, totalQ, Dv]}
     * @param lse receives each row's log-sum-exp, F32 {@code [1, Hq, totalQ, 1]}; null when not wanted
     * @param options masking, scale and the other options of the call
     */
    public void attentionVarlenInto(
            int[] seqs, Tensor q, int[] cuSeqlensQ, Tensor out, Tensor lse, AttentionOptions options) {
        Objects.requireNonNull(seqs, "seqs");
        requirePlain("packed variable-length attention");
        int[][] tables = new int[seqs.length][];
        int[] lens = new int[seqs.length];
        for (int i = 0; i < seqs.length; i++) {
            Sequence s = sequence(seqs[i], "seqs[" + i + "]");
            tables[i] = Arrays.copyOf(s.blocks, s.blockCount);
            lens[i] = s.kept(blockSize);
        }
        Backends.selected(ServingPredicates.serving(q, valueDim(), options))
                .forwardVarlenPaged(q, new PagedKv(keys, values, tables, lens), cuSeqlensQ, out, lse, options);
    }

    /**
     * {@link #attention(int[], Tensor, AttentionOptions)} with q rotated by {@code rope} inside the call: a copy of q
     * is rotated (the caller's tensor is left as it is), row {@code i} of batch entry {@code b} to position
     * {@code length(seqs[b]) - Sq + i}, the positions {@link #append(int[], Tensor, Tensor, Rope)} gave the last
     * {@code Sq} keys. A decode step is then {@code append(seqs, k, v, rope)} and this call. A sequence with no
     * tokens is not rotated (it sees nothing); one with tokens needs at least {@code Sq} of them.
     *
     * @param seqs live sequence ids, one per batch entry, all distinct
     * @param q queries {@code [seqs.length, Hq, Sq, D]}, before rotation
     * @param options masking, scale and the other options of the call
     * @param rope rotates q to its positions; null for none
     * @return the output, in q's dtype, and the LSE
     */
    public AttentionResult attention(int[] seqs, Tensor q, AttentionOptions options, Rope rope) {
        Objects.requireNonNull(q, "q");
        AttentionResult result = CacheRows.result(q, valueDim());
        attentionInto(seqs, q, result.out(), result.lse(), options, rope);
        return result;
    }

    /**
     * {@link #attention(int[], Tensor, AttentionOptions, Rope)} into caller-owned {@code out} and {@code lse}
     * (nullable).
     *
     * @param seqs live sequence ids, one per batch entry, all distinct
     * @param q queries {@code [seqs.length, Hq, Sq, D]}, before rotation
     * @param out receives the output {@code [seqs.length, Hq, Sq, Dv]}
     * @param lse receives each row's log-sum-exp, F32 {@code [seqs.length, Hq, Sq, 1]}; null when not wanted
     * @param options masking, scale and the other options of the call
     * @param rope rotates q to its positions; null for none
     */
    public void attentionInto(int[] seqs, Tensor q, Tensor out, Tensor lse, AttentionOptions options, Rope rope) {
        Objects.requireNonNull(seqs, "seqs");
        Objects.requireNonNull(q, "q");
        int[] ids = seqs.clone();
        if (rope == null) {
            attentionInto(ids, q, out, lse, options);
            return;
        }
        int[] lens = new int[ids.length];
        for (int i = 0; i < ids.length; i++) {
            lens[i] = sequence(ids[i], "seqs[" + i + "]").length;
        }
        if (lens.length != q.batch()) {
            throw new IllegalArgumentException("seqs: length " + lens.length + " must equal the batch " + q.batch()
                    + " of q " + q.shapeString() + " (one sequence per batch entry)");
        }
        attentionInto(ids, rope.rotatedQueries(q, lens), out, lse, options);
    }

    /** A quantized pool as a call on {@code seqs} reads it: its pools, fresh tables and lengths. */
    QuantizedKv quantizedView(int[] seqs) {
        int[][] tables = new int[seqs.length][];
        int[] lens = new int[seqs.length];
        for (int i = 0; i < seqs.length; i++) {
            Sequence s = sequence(seqs[i], "seqs[" + i + "]");
            tables[i] = Arrays.copyOf(s.blocks, s.blockCount);
            lens[i] = s.length;
        }
        return quant.view(tables, lens);
    }

    private Sequence sequence(int id, String name) {
        Sequence s = sequences.get(id);
        if (s == null) {
            throw new IllegalArgumentException(
                    name + ": no live sequence " + id + " in this cache (" + sequences.size() + " live)");
        }
        return s;
    }

    @Override
    public String toString() {
        Usage u = usage();
        return "PagedKvCache[" + format() + ", " + numBlocks() + " blocks of " + blockSize + ", " + kvHeads()
                + " KV heads, head dims " + headDim() + "/" + valueDim() + ", " + u.usedBlocks() + " used, "
                + u.sequences() + " sequences]";
    }
}
