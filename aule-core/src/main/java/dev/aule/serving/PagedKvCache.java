package dev.aule.serving;

import dev.aule.Attention;
import dev.aule.AttentionOptions;
import dev.aule.AttentionResult;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.Capabilities;
import dev.aule.spi.PagedKv;
import dev.aule.spi.QuantizedKv;

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
    // A quantized pool's codes and scales; null for F32/F16/BF16 pools, which keys and values hold.
    private final QuantizedPool quant;

    /** A sequence's block table and length. */
    private static final class Sequence {
        int[] blocks = new int[4];
        int blockCount;
        int length;

        Sequence copy() {
            Sequence s = new Sequence();
            s.blocks = blocks.clone();
            s.blockCount = blockCount;
            s.length = length;
            return s;
        }
    }

    /**
     * Token and memory accounting.
     *
     * @param totalBlocks blocks in the pool
     * @param usedBlocks blocks held by at least one sequence
     * @param freeBlocks blocks available to appends
     * @param sequences live sequences
     * @param tokens tokens over all sequences (a shared prefix counted once per sequence)
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
        sequences.put(id, new Sequence());
        return id;
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
     * Cached tokens of {@code seq}.
     *
     * @param seq a live sequence id
     * @return its cached tokens
     */
    public int length(int seq) {
        return sequence(seq, "seq").length;
    }

    /**
     * The blocks of {@code seq}, in position order (a copy).
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
            tokens += s.length;
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
        int grow = blocksFor((long) s.length + tokens, blockSize) - s.blockCount;
        boolean copyOnWrite = s.length % blockSize != 0 && blocks.references(s.blocks[s.blockCount - 1]) > 1;
        return grow + (copyOnWrite ? 1 : 0);
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
        Sequence[] targets = new Sequence[seqs.length];
        long needed = 0;
        for (int i = 0; i < seqs.length; i++) {
            targets[i] = sequence(seqs[i], "seqs[" + i + "]");
            for (int j = 0; j < i; j++) {
                if (seqs[j] == seqs[i]) {
                    throw new IllegalArgumentException(
                            "seqs: sequence " + seqs[i] + " appears twice (entries " + j + " and " + i + ")");
                }
            }
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
            for (int t = 0; t < n; t++) {
                int position = s.length;
                if (position % blockSize == 0) {
                    addBlock(s, blocks.take(s.blockCount == 0 ? -1 : s.blocks[s.blockCount - 1]));
                }
                int block = s.blocks[position / blockSize];
                int slot = position % blockSize;
                for (int h = 0; h < kvHeads(); h++) {
                    CacheRows.copy(k, i, h, t, keys, block, slot, row, rope, position);
                    CacheRows.copy(v, i, h, t, values, block, slot, row, null, 0);
                }
                s.length++;
            }
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
        AttentionResult result = new AttentionResult(
                Tensor.allocate(q.dtype(), q.batch(), q.heads(), q.seqLen(), valueDim()),
                Tensor.allocate(DType.F32, q.batch(), q.heads(), q.seqLen(), 1));
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
            lens[i] = s.length;
        }
        if (quant != null) {
            Backends.selected(Capabilities::quantizedKv)
                    .forwardQuantized(q, quant.view(tables, lens), out, lse, options);
            return;
        }
        Backends.selected(Capabilities::serving)
                .forwardPaged(q, new PagedKv(keys, values, tables, lens), out, lse, options);
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
