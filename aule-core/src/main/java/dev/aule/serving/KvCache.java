package dev.aule.serving;

import dev.aule.AttentionOptions;
import dev.aule.AttentionResult;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.CacheIndex;
import dev.aule.spi.NamedTensor;
import dev.aule.spi.QuantizedKv;
import dev.aule.spi.ServingPredicates;
import dev.aule.spi.TensorChecks;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Objects;

/**
 * A contiguous key/value cache for a batch of sequences: keys {@code [batch, Hkv, capacity, D]} and
 * values {@code [batch, Hkv, capacity, Dv]}, with a length per sequence. New tokens are appended (any
 * number per sequence, optionally rotated by RoPE on the way in); queries attend to each sequence's
 * cached prefix with {@link #attention}.
 *
 * <p>Causal masking is aligned bottom-right, so the queries of a call are the last {@code Sq}
 * positions of each sequence: prefill on top of a cached prefix (append the prompt's keys, then
 * attend with its queries) and single-token decode (append one, attend with one) are the same call.
 *
 * <p>Not thread-safe: one thread (the scheduler) appends and attends; attention itself runs on all
 * cores.
 */
public final class KvCache {
    /**
     * Tokens per INT8 scale block of a quantized contiguous cache: each run of 32 positions of a sequence has its
     * own key and value scale per KV head (llama.cpp's q8_0 groups 32 values of a row; this groups 32 rows).
     */
    public static final int QUANT_BLOCK = 32;

    private final Tensor keys;
    private final Tensor values;
    private final int[] lengths;
    // Under a StreamingPolicy: tokens appended to each sequence (the next position), and the policy; else null.
    // Invariant: slots [0, min(length, sinkTokens)) hold positions [0, ...), slots [sinkTokens, length) the
    // positions [position - (length - sinkTokens), position), in order.
    private int[] positions;
    private StreamingPolicy streaming;
    // Quantized caches: the codes and scales (sequence b's blocks are b * blocksPerSequence + i); null otherwise,
    // and then keys and values hold the cache.
    private final QuantizedPool quant;
    private final int quantCapacity;
    // The device copy of keys and values for a cache allocated with a backend that holds device memory; else null.
    private DeviceMirror device;

    private KvCache(Tensor keys, Tensor values) {
        this.keys = keys;
        this.values = values;
        this.lengths = new int[keys.batch()];
        this.quant = null;
        this.quantCapacity = 0;
    }

    private KvCache(QuantizedPool quant, int batch, int capacity) {
        this.keys = null;
        this.values = null;
        this.lengths = new int[batch];
        this.quant = quant;
        this.quantCapacity = capacity;
    }

    /**
     * A cache of {@code batch} empty sequences in any {@link KvFormat}: F32, F16 and BF16 as
     * {@link #allocate(DType, int, int, int, int, int)}; INT8 with a scale per {@link #QUANT_BLOCK} positions and
     * KV head; FP8 with scale 1 (use {@link #allocate(KvFormat, float[], float[], int, int, int, int, int)} for
     * others).
     *
     * @param format how keys and values are stored
     * @param batch sequences, at least 1
     * @param kvHeads KV heads {@code Hkv}, at least 1
     * @param capacity tokens each sequence can hold, at least 1
     * @param headDim elements {@code D} per row, at least 1
     * @param valueDim elements {@code Dv} per value row, at least 1
     * @return the empty cache
     */
    public static KvCache allocate(KvFormat format, int batch, int kvHeads, int capacity, int headDim, int valueDim) {
        return allocate(format, null, null, batch, kvHeads, capacity, headDim, valueDim);
    }

    /**
     * A cache in {@code format} with FP8 descale factors (vLLM's {@code k_scale}, {@code v_scale}): a key {@code x}
     * is stored as {@code fp8(x / keyScales[h])} and read as {@code fp8 * keyScales[h]}. Quantized caches keep codes
     * and scales in Java arrays (at most 2^31-9 codes each for keys and for values).
     *
     * @param format how keys and values are stored
     * @param keyScales FP8 only: one scale (per tensor) or one per KV head, finite and positive; null for 1 (and
     *     for every other format)
     * @param valueScales the same for values
     * @param batch sequences, at least 1
     * @param kvHeads KV heads {@code Hkv}, at least 1
     * @param capacity tokens each sequence can hold, at least 1
     * @param headDim elements {@code D} per row, at least 1
     * @param valueDim elements {@code Dv} per value row, at least 1
     * @return the empty cache
     * @throws IllegalArgumentException when an extent is below 1, the scales break a rule above, or the pool is
     *     too large
     */
    public static KvCache allocate(
            KvFormat format,
            float[] keyScales,
            float[] valueScales,
            int batch,
            int kvHeads,
            int capacity,
            int headDim,
            int valueDim) {
        Objects.requireNonNull(format, "format");
        int[] extents = {batch, kvHeads, capacity, headDim, valueDim};
        for (int extent : extents) {
            if (extent < 1) {
                throw new IllegalArgumentException(
                        "batch, kvHeads, capacity, headDim, valueDim: must be >= 1, got " + Arrays.toString(extents));
            }
        }
        float[] ks = QuantizedPool.checkScales("keyScales", keyScales, format, kvHeads);
        float[] vs = QuantizedPool.checkScales("valueScales", valueScales, format, kvHeads);
        if (!format.quantized()) {
            return allocate(format.dtype(), batch, kvHeads, capacity, headDim, valueDim);
        }
        long blocks = (long) batch * Math.ceilDiv(capacity, QUANT_BLOCK);
        if (blocks > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("batch, capacity: " + blocks + " blocks of " + QUANT_BLOCK
                    + " tokens are more than a quantized cache holds");
        }
        QuantizedPool pool = new QuantizedPool(format, (int) blocks, QUANT_BLOCK, kvHeads, headDim, valueDim, ks, vs);
        return new KvCache(pool, batch, capacity);
    }

    /**
     * A zeroed cache of {@code batch} empty sequences. Each of keys and values is one Java array
     * ({@code float[]}, or {@code short[]} for F16/BF16) when it has at most {@link Integer#MAX_VALUE}
     * {@code - 8} elements, so it counts against the heap ({@code -Xmx}); a larger one is native memory,
     * freed by the garbage collector with the cache and counted against {@code -XX:MaxDirectMemorySize}
     * (by default the maximum heap size). For other memory (mapped files, an arena of your own), build
     * the cache over your tensors with {@link #of}.
     *
     * @param dtype the element type
     * @param batch sequences, at least 1
     * @param kvHeads KV heads {@code Hkv}, at least 1
     * @param capacity tokens each sequence can hold, at least 1
     * @param headDim elements {@code D} per row, at least 1
     * @param valueDim elements {@code Dv} per value row, at least 1
     * @return the empty cache
     */
    public static KvCache allocate(DType dtype, int batch, int kvHeads, int capacity, int headDim, int valueDim) {
        Objects.requireNonNull(dtype, "dtype");
        long[] kShape = {batch, kvHeads, capacity, headDim};
        long[] vShape = {batch, kvHeads, capacity, valueDim};
        for (long extent : kShape) {
            if (extent < 1) {
                throw new IllegalArgumentException(
                        "batch, kvHeads, capacity, headDim: must be >= 1, got " + Arrays.toString(kShape));
            }
        }
        if (valueDim < 1) {
            throw new IllegalArgumentException("valueDim: must be >= 1, got " + valueDim);
        }
        long kCount = countOrMinusOne(kShape);
        long vCount = countOrMinusOne(vShape);
        if (kCount < 0 || vCount < 0) {
            throw new IllegalArgumentException("batch, kvHeads, capacity, headDim, valueDim: "
                    + Arrays.toString(new int[] {batch, kvHeads, capacity, headDim, valueDim})
                    + " make more than 2^63-1 elements, which no memory holds");
        }
        return new KvCache(contiguous(dtype, kShape, kCount), contiguous(dtype, vShape, vCount));
    }

    /**
     * {@link #allocate(DType, int, int, int, int, int)} with {@code Dv = D}.
     *
     * @param dtype the element type
     * @param batch sequences, at least 1
     * @param kvHeads KV heads {@code Hkv}, at least 1
     * @param capacity tokens each sequence can hold, at least 1
     * @param headDim elements {@code D} per row, at least 1
     * @return the empty cache
     */
    public static KvCache allocate(DType dtype, int batch, int kvHeads, int capacity, int headDim) {
        return allocate(dtype, batch, kvHeads, capacity, headDim, headDim);
    }

    /**
     * A zeroed cache whose keys and values also live in {@code backend}'s memory (a GPU's, for {@code vulkan}), so
     * attention on it reads them there: each append writes the new rows (rotated by RoPE on the host) to the host
     * storage and uploads only those rows, and a call uploads only q, the lengths and the row indices. The host
     * storage stays the truth (reads such as {@link #dequantizedKeys} come from it), and a call whose options the
     * backend lacks (per-batch ALiBi, dropout, a head dim over its limit) runs on it as for a host cache. With a
     * backend that computes in host memory ({@code cpu}) this is {@link #allocate(KvFormat, int, int, int, int,
     * int)}. Calls on the device copy run on {@code backend} whatever backend is forced. {@link #close()} frees the
     * device memory.
     *
     * @param backend where the device copy lives
     * @param format F32, F16 or BF16
     * @param batch sequences, at least 1
     * @param kvHeads KV heads {@code Hkv}, at least 1
     * @param capacity tokens each sequence can hold, at least 1
     * @param headDim elements {@code D} per row, at least 1
     * @param valueDim elements {@code Dv} per value row, at least 1
     * @return the empty cache
     * @throws IllegalArgumentException when an extent is below 1, the format is quantized (device caches hold no
     *     codes), or the device cannot hold the cache
     */
    public static KvCache allocate(
            AttentionBackend backend,
            KvFormat format,
            int batch,
            int kvHeads,
            int capacity,
            int headDim,
            int valueDim) {
        DeviceMirror.checkFormat(format, backend);
        KvCache cache = allocate(format.dtype(), batch, kvHeads, capacity, headDim, valueDim);
        cache.device = DeviceMirror.allocate(backend, cache.keys, cache.values);
        return cache;
    }

    /**
     * Whether keys and values also live in a backend's memory ({@link #allocate(AttentionBackend, KvFormat, int,
     * int, int, int, int)}), until {@link #close()}.
     *
     * @return the backend's name, or null for a host cache
     */
    public String deviceBackend() {
        return device == null ? null : device.backend();
    }

    /**
     * The bytes of keys and values in the backend's memory (in addition to {@link #bytes()} on the host).
     *
     * @return the bytes, 0 for a host cache or once closed
     */
    public long deviceBytes() {
        return device == null ? 0 : device.bytes();
    }

    /**
     * Frees the device copy of a cache allocated with a backend; the cache stays usable, on its host storage.
     * Idempotent; nothing to do for a host cache.
     */
    public void close() {
        if (device != null) {
            device.close();
        }
    }

    /**
     * A cache over caller-owned storage (any layout): keys {@code [batch, Hkv, capacity, D]} and values
     * with the same batch, heads and capacity. Every sequence starts empty; the memory is not cleared.
     * Appends write both, so each must be writable, reachable from this thread, with no two elements
     * sharing memory (no zero strides), and the two must not overlap.
     *
     * @param keys the key storage
     * @param values the value storage
     * @return the empty cache
     * @throws IllegalArgumentException when a rule above is broken
     */
    public static KvCache of(Tensor keys, Tensor values) {
        Objects.requireNonNull(keys, "keys");
        Objects.requireNonNull(values, "values");
        if (keys.batch() != values.batch() || keys.heads() != values.heads() || keys.seqLen() != values.seqLen()) {
            throw new IllegalArgumentException("values: batch, heads and capacity must equal the keys' (keys "
                    + keys.shapeString() + ", values " + values.shapeString() + ")");
        }
        // Appends write through both tensors: they are outputs, with the rules of every output.
        TensorChecks.checkWritable("keys", keys);
        TensorChecks.checkWritable("values", values, new NamedTensor("keys", keys));
        return new KvCache(keys, values);
    }

    /** The element count of {@code shape}, or -1 when it passes {@code Long.MAX_VALUE}. */
    private static long countOrMinusOne(long[] shape) {
        try {
            return Math.multiplyExact(Math.multiplyExact(shape[0], shape[1]), Math.multiplyExact(shape[2], shape[3]));
        } catch (ArithmeticException e) {
            return -1;
        }
    }

    /** A zeroed BHSD-contiguous tensor of {@code count} elements, the checked element count of {@code shape}. */
    private static Tensor contiguous(DType dtype, long[] shape, long count) {
        long[] strides = {shape[1] * shape[2] * shape[3], shape[2] * shape[3], shape[3], 1};
        return Tensor.of(storage(dtype, count), dtype, shape, strides);
    }

    /**
     * Zeroed memory for {@code count} elements of a cache: a Java array when one holds them, because the
     * CPU kernels stream F32 rows from a {@code float[]} faster than from native memory (a third faster
     * per decode step, docs/PERFORMANCE.md), else native memory from an automatic arena.
     */
    static MemorySegment storage(DType dtype, long count) {
        if (count <= MAX_ARRAY_LENGTH) {
            return dtype == DType.F32
                    ? MemorySegment.ofArray(new float[(int) count])
                    : MemorySegment.ofArray(new short[(int) count]);
        }
        if (count > Long.MAX_VALUE / dtype.byteSize()) {
            throw new IllegalArgumentException(
                    "shape: " + count + " elements of " + dtype + " are more than 2^63-1 bytes, which no memory holds");
        }
        return Arena.ofAuto().allocate(count * dtype.byteSize(), 64);
    }

    /** The longest array every JVM allocates (some reserve a few header words below Integer.MAX_VALUE). */
    private static final int MAX_ARRAY_LENGTH = Integer.MAX_VALUE - 8;

    /** {@return the sequences} */
    public int batch() {
        return lengths.length;
    }

    /** {@return the KV heads {@code Hkv}} */
    public int kvHeads() {
        return quant != null ? quant.kvHeads : keys.heads();
    }

    /** {@return the tokens each sequence can hold} */
    public int capacity() {
        return quant != null ? quantCapacity : keys.seqLen();
    }

    /** {@return the elements {@code D} of each key row} */
    public int headDim() {
        return quant != null ? quant.headDim : keys.headDim();
    }

    /** {@return the elements {@code Dv} of each value row} */
    public int valueDim() {
        return quant != null ? quant.valueDim : values.headDim();
    }

    /** {@return how keys and values are stored} */
    public KvFormat format() {
        return quant != null ? quant.format : KvFormat.of(keys.dtype());
    }

    /**
     * The bytes of the whole storage: keys and values, and for a quantized cache its scales.
     *
     * @return the bytes
     */
    public long bytes() {
        if (quant != null) {
            return quant.bytes();
        }
        return keys.elementCount() * keys.dtype().byteSize()
                + values.elementCount() * values.dtype().byteSize();
    }

    /**
     * Sequence {@code b}'s cached keys as they are read by attention (dequantized for a quantized cache), F32
     * {@code [1, Hkv, length(b), D]}; a copy, null while the sequence is empty.
     *
     * @param b the sequence (batch entry)
     * @return its keys
     */
    public Tensor dequantizedKeys(int b) {
        return readBack(true, b);
    }

    /**
     * Sequence {@code b}'s cached values as attention reads them, F32 {@code [1, Hkv, length(b), Dv]}; a copy, null while the sequence is empty.
     *
     * @param b the sequence (batch entry)
     * @return its values
     */
    public Tensor dequantizedValues(int b) {
        return readBack(false, b);
    }

    private Tensor readBack(boolean key, int b) {
        int len = length(b);
        if (len == 0) {
            return null;
        }
        if (quant != null) {
            return quant.dequantized(key, table(b), len);
        }
        Tensor src = key ? keys : values;
        Tensor t = Tensor.allocate(DType.F32, 1, src.heads(), len, src.headDim());
        float[] row = new float[src.headDim()];
        for (int h = 0; h < src.heads(); h++) {
            for (int j = 0; j < len; j++) {
                src.readRow(b, h, j, row, 0);
                t.writeRow(0, h, j, row, 0);
            }
        }
        return t;
    }

    /** Sequence {@code b}'s blocks in a quantized cache: its runs of {@link #QUANT_BLOCK} positions. */
    private int[] table(int b) {
        int perSequence = Math.ceilDiv(quantCapacity, QUANT_BLOCK);
        int[] table = new int[Math.ceilDiv(lengths[b], QUANT_BLOCK)];
        for (int i = 0; i < table.length; i++) {
            table[i] = b * perSequence + i;
        }
        return table;
    }

    /**
     * Cached tokens of sequence {@code b}.
     *
     * @param b the sequence (batch entry)
     * @return its cached tokens
     */
    public int length(int b) {
        return lengths[Objects.checkIndex(b, lengths.length)];
    }

    /**
     * Turns this empty cache into a StreamingLLM cache (Hugging Face's {@code SinkCache}): every sequence keeps its
     * first {@code policy.sinkTokens()} tokens and its {@code policy.window()} most recent, exactly (no rounding: a
     * contiguous cache moves its rows), and drops the ones between, so appends never fill it. {@link #length} is
     * then the kept tokens, what {@link #attention} sees, in position order; {@link #position} counts every token
     * appended. Keys keep the RoPE positions they were appended at (see {@link
     * PagedKvCache#newSequence(StreamingPolicy)}). An append past the window moves the kept window's rows down by the
     * tokens it drops (a copy of at most {@code window} rows per head), and a chunk longer than the window drops its
     * own first tokens: append and attend in chunks of at most the window.
     *
     * @param policy the sink tokens and window every sequence keeps
     * @throws IllegalArgumentException when a sequence is not empty, a policy is already set, or the capacity is below
     *     {@code sinkTokens + window}
     */
    public void enableStreaming(StreamingPolicy policy) {
        Objects.requireNonNull(policy, "policy");
        if (quant != null) {
            throw new IllegalStateException("a " + quant.format + " cache does not stream: its blocks of "
                    + QUANT_BLOCK + " positions share a scale, which moving rows down would break; use an F32, F16"
                    + " or BF16 cache");
        }
        if (streaming != null) {
            throw new IllegalArgumentException("policy: this cache already streams with " + streaming);
        }
        for (int b = 0; b < lengths.length; b++) {
            if (lengths[b] != 0) {
                throw new IllegalArgumentException("policy: streaming starts on an empty cache; sequence " + b
                        + " holds " + lengths[b] + " tokens");
            }
        }
        if ((long) policy.sinkTokens() + policy.window() > capacity()) {
            throw new IllegalArgumentException("policy: " + policy.sinkTokens() + " sink tokens + a window of "
                    + policy.window() + " exceed the capacity " + capacity());
        }
        this.streaming = policy;
        this.positions = new int[lengths.length];
    }

    /** {@return the streaming policy, or null when the cache keeps every token} */
    public StreamingPolicy streamingPolicy() {
        return streaming;
    }

    /**
     * Tokens appended to sequence {@code b}: the position of its next token. Equal to {@link #length} unless a
     * {@linkplain #enableStreaming streaming policy} dropped tokens.
     *
     * @param b the sequence (batch entry)
     * @return its next position
     */
    public int position(int b) {
        Objects.checkIndex(b, lengths.length);
        return positions == null ? lengths[b] : positions[b];
    }

    /** {@return the length of every sequence (a copy)} */
    public int[] lengths() {
        return lengths.clone();
    }

    /**
     * The whole key storage {@code [batch, Hkv, capacity, D]}; positions past a sequence's length are stale.
     *
     * @return the key storage
     * @throws IllegalStateException for a quantized cache, whose codes are no tensor (see {@link #dequantizedKeys})
     */
    public Tensor keys() {
        requireTensors();
        return keys;
    }

    /**
     * The whole value storage {@code [batch, Hkv, capacity, Dv]}.
     *
     * @return the value storage
     * @throws IllegalStateException for a quantized cache (see {@link #dequantizedValues})
     */
    public Tensor values() {
        requireTensors();
        return values;
    }

    private void requireTensors() {
        if (quant != null) {
            throw new IllegalStateException("a " + quant.format + " cache stores codes and scales, not tensors;"
                    + " read them with dequantizedKeys and dequantizedValues");
        }
    }

    /**
     * Appends {@code k.seqLen()} tokens to every sequence: k {@code [batch, Hkv, n, D]}, v {@code [batch, Hkv, n, Dv]}.
     *
     * @param k keys {@code [batch, Hkv, n, D]} of the {@code n} new tokens
     * @param v values {@code [batch, Hkv, n, Dv]} of the same tokens
     */
    public void append(Tensor k, Tensor v) {
        append(k, v, null, null);
    }

    /**
     * Appends the first {@code counts[b]} rows of batch entry {@code b} of k and v to sequence {@code b}
     * ({@code counts} null: all {@code k.seqLen()} rows), rotating each key by {@code rope} (null: none) to
     * its position in the sequence. All or nothing: a count out of range or a sequence that would pass the
     * capacity changes nothing.
     *
     * @param k keys {@code [batch, Hkv, n, D]} of the {@code n} new tokens
     * @param v values {@code [batch, Hkv, n, Dv]} of the same tokens
     * @param counts new tokens of each sequence
     * @param rope rotates each key to its position in its sequence; null to store keys as they are
     * @throws KvCacheFullException when a sequence would pass the capacity
     */
    public void append(Tensor k, Tensor v, int[] counts, Rope rope) {
        CacheRows.checkNew(k, v, batch(), kvHeads(), headDim(), valueDim(), rope);
        if (quant == null) {
            // The storage is the caller's (of): its arena may have been closed since.
            TensorChecks.checkAccessible(new NamedTensor("keys", keys), new NamedTensor("values", values));
        }
        int[] n = counts == null ? filled(batch(), k.seqLen()) : counts.clone();
        if (n.length != batch()) {
            throw new IllegalArgumentException("counts: length " + n.length + " must equal the batch " + batch());
        }
        for (int b = 0; b < n.length; b++) {
            if (n[b] < 0 || n[b] > k.seqLen()) {
                throw new IllegalArgumentException("counts[" + b + "]: " + n[b] + " must be in [0, " + k.seqLen()
                        + "], the rows of k " + k.shapeString());
            }
            if (rope != null) {
                rope.checkPositions("counts[" + b + "]", position(b), n[b]);
            }
            if (streaming != null && (long) positions[b] + n[b] > Integer.MAX_VALUE) {
                throw new IllegalArgumentException(
                        "counts[" + b + "]: " + positions[b] + " + " + n[b] + " positions pass 2^31 - 1");
            }
            if (streaming == null && (long) lengths[b] + n[b] > capacity()) {
                throw new KvCacheFullException("sequence " + b + ": " + lengths[b] + " cached + " + n[b]
                        + " new tokens exceed the capacity " + capacity());
            }
        }
        if (quant != null) {
            appendQuantized(k, v, n, rope);
            return;
        }
        float[] row = new float[Math.max(headDim(), valueDim())];
        if (streaming != null) {
            for (int b = 0; b < n.length; b++) {
                appendStreaming(b, k, v, n[b], rope, row);
            }
            if (device != null) {
                device.flush();
            }
            return;
        }
        for (int b = 0; b < n.length; b++) {
            for (int h = 0; h < kvHeads(); h++) {
                for (int s = 0; s < n[b]; s++) {
                    int position = lengths[b] + s;
                    CacheRows.copy(k, b, h, s, keys, b, position, row, rope, position);
                    CacheRows.copy(v, b, h, s, values, b, position, row, null, 0);
                }
            }
        }
        if (device != null) {
            for (int b = 0; b < n.length; b++) {
                device.write(b, lengths[b], n[b]);
            }
            device.flush();
        }
        for (int b = 0; b < n.length; b++) {
            lengths[b] += n[b];
        }
    }

    /**
     * A streaming append of {@code n} rows of batch entry {@code b}: the kept window's rows that the new tokens push
     * out of it are dropped by moving the rest down (row by row from the lowest, so overlapping moves are safe), then
     * each new token goes to the next slot, unless it is itself older than the window once all are in.
     */
    private void appendStreaming(int b, Tensor k, Tensor v, int n, Rope rope, float[] row) {
        int sinks = streaming.sinkTokens();
        int p = positions[b];
        int length = lengths[b];
        int end = p + n;
        int windowFrom = Math.max(sinks, end - streaming.window()); // first position the window keeps at the end
        int oldWindowFrom = p - Math.max(0, length - sinks); // position of slot `sinks` (when length > sinks)
        int drop = length > sinks ? Math.min(length - sinks, Math.max(0, windowFrom - oldWindowFrom)) : 0;
        if (drop > 0) {
            for (int h = 0; h < kvHeads(); h++) {
                for (int slot = sinks; slot + drop < length; slot++) {
                    keys.readRow(b, h, slot + drop, row, 0);
                    keys.writeRow(b, h, slot, row, 0);
                    values.readRow(b, h, slot + drop, row, 0);
                    values.writeRow(b, h, slot, row, 0);
                }
            }
        }
        int cursor = length - drop;
        for (int s = 0; s < n; s++) {
            int position = p + s;
            if (position >= sinks && position < windowFrom) {
                continue; // a token of this append that the window has already passed
            }
            for (int h = 0; h < kvHeads(); h++) {
                CacheRows.copy(k, b, h, s, keys, b, cursor, row, rope, position);
                CacheRows.copy(v, b, h, s, values, b, cursor, row, null, 0);
            }
            cursor++;
        }
        if (device != null) {
            int changed = drop > 0 ? sinks : length; // the moved rows and the new ones
            device.write(b, changed, cursor - changed);
        }
        lengths[b] = cursor;
        positions[b] = end;
    }

    /**
     * The quantized append, after the checks: every new row is read (and rotated) first, so a non-finite one
     * throws before anything is stored; then each sequence's rows go to its blocks a block's run at a time, so a
     * prefill chunk sets an INT8 block's scale once from all its rows.
     */
    private void appendQuantized(Tensor k, Tensor v, int[] n, Rope rope) {
        float[][][] newKeys = new float[n.length][kvHeads()][];
        float[][][] newValues = new float[n.length][kvHeads()][];
        for (int b = 0; b < n.length; b++) {
            for (int h = 0; h < kvHeads(); h++) {
                newKeys[b][h] = QuantizedPool.newRows(k, "k", b, h, 0, n[b], rope, lengths[b]);
                newValues[b][h] = QuantizedPool.newRows(v, "v", b, h, 0, n[b], null, 0);
            }
        }
        int perSequence = Math.ceilDiv(quantCapacity, QUANT_BLOCK);
        for (int b = 0; b < n.length; b++) {
            for (int s = 0; s < n[b]; ) {
                int position = lengths[b] + s;
                int slot = position % QUANT_BLOCK;
                int run = Math.min(QUANT_BLOCK - slot, n[b] - s);
                int block = b * perSequence + position / QUANT_BLOCK;
                for (int h = 0; h < kvHeads(); h++) {
                    quant.write(true, h, block, slot, newKeys[b][h], s * headDim(), run);
                    quant.write(false, h, block, slot, newValues[b][h], s * valueDim(), run);
                }
                s += run;
            }
            lengths[b] += n[b];
        }
    }

    /**
     * Drops the tokens of sequence {@code b} past {@code length} (for example rejected speculative tokens); 0 empties
     *     it. Under a {@linkplain #enableStreaming streaming policy} {@code length} counts kept tokens: the newest go,
     *     {@link #position} moves back with them, and tokens the window dropped before stay dropped.
     *
     * @param b the sequence (batch entry)
     * @param length tokens to keep, at most the current length
     */
    public void truncate(int b, int length) {
        Objects.checkIndex(b, lengths.length);
        if (length < 0 || length > lengths[b]) {
            throw new IllegalArgumentException(
                    "length: " + length + " must be in [0, " + lengths[b] + "], the length of sequence " + b);
        }
        if (positions != null) {
            // The newest tokens go; at or below the sink tokens what is left is exactly positions [0, length).
            positions[b] = length <= streaming.sinkTokens() ? length : positions[b] - (lengths[b] - length);
        }
        lengths[b] = length;
    }

    /**
     * Attention of q {@code [batch, Hq, Sq, D]} against each sequence's cached tokens, on the best available
     * backend with serving entry points ({@link Backends#selected(java.util.function.Predicate)}): output (q's
     * dtype) and LSE. See {@link AttentionBackend#forwardCached}.
     *
     * @param q queries {@code [batch, Hq, Sq, D]}
     * @param options masking, scale and the other options of the call
     * @return the output, in q's dtype, and the LSE
     */
    public AttentionResult attention(Tensor q, AttentionOptions options) {
        Objects.requireNonNull(q, "q");
        AttentionResult result = CacheRows.result(q, valueDim());
        attentionInto(q, result.out(), result.lse(), options);
        return result;
    }

    /**
     * {@link #attention} into caller-owned {@code out} and {@code lse} (nullable).
     *
     * @param q queries {@code [batch, Hq, Sq, D]}
     * @param out receives the output {@code [batch, Hq, Sq, Dv]}
     * @param lse receives each row's log-sum-exp, F32 {@code [batch, Hq, Sq, 1]}; null when not wanted
     * @param options masking, scale and the other options of the call
     */
    public void attentionInto(Tensor q, Tensor out, Tensor lse, AttentionOptions options) {
        if (quant != null) {
            Backends.selected(ServingPredicates.quantized(q, valueDim(), options))
                    .forwardQuantized(q, quantizedView(), out, lse, options);
            return;
        }
        if (device != null && device.runs(q, valueDim(), options)) {
            device.ready().forwardCached(q, CacheIndex.ofLengths(lengths.clone()), out, lse, options);
            return;
        }
        Backends.selected(ServingPredicates.serving(q, valueDim(), options))
                .forwardCached(q, keys, values, lengths.clone(), out, lse, options);
    }

    /**
     * {@link #attention(Tensor, AttentionOptions)} with q rotated by {@code rope} inside the call: a copy of q is
     * rotated (the caller's tensor is left as it is), row {@code i} of sequence {@code b} to position
     * {@code length(b) - Sq + i}, the positions {@link #append(Tensor, Tensor, int[], Rope)} gave the last
     * {@code Sq} keys. A decode step is then {@code append(k, v, null, rope)} and this call. A sequence with no
     * tokens is not rotated (it sees nothing); one with tokens needs at least {@code Sq} of them.
     *
     * @param q queries {@code [batch, Hq, Sq, D]}, before rotation
     * @param options masking, scale and the other options of the call
     * @param rope rotates q to its positions; null for none
     * @return the output, in q's dtype, and the LSE
     */
    public AttentionResult attention(Tensor q, AttentionOptions options, Rope rope) {
        return attention(null, q, options, rope);
    }

    /**
     * {@link #attention(Tensor, AttentionOptions, Rope)} into caller-owned {@code out} and {@code lse} (nullable).
     *
     * @param q queries {@code [batch, Hq, Sq, D]}, before rotation
     * @param out receives the output {@code [batch, Hq, Sq, Dv]}
     * @param lse receives each row's log-sum-exp, F32 {@code [batch, Hq, Sq, 1]}; null when not wanted
     * @param options masking, scale and the other options of the call
     * @param rope rotates q to its positions; null for none
     */
    public void attentionInto(Tensor q, Tensor out, Tensor lse, AttentionOptions options, Rope rope) {
        attentionInto(null, q, out, lse, options, rope);
    }

    /**
     * Attention of a chosen subset of the cache's sequences (FlashAttention's {@code cache_batch_idx}): batch entry
     * {@code i} of q {@code [rows.length, Hq, Sq, D]} attends the cached tokens of sequence {@code rows[i]}. Rows may
     * repeat (several queries against one cached prompt) and need not cover the cache, so a scheduler runs the
     * sequences that have work without packing the cache. {@code rows} is copied and checked before any read.
     *
     * @param rows the sequence of each batch entry of q, each in {@code [0, batch())}; null for all in order
     * @param q queries {@code [rows.length, Hq, Sq, D]}
     * @param options masking, scale and the other options of the call
     * @return the output, in q's dtype, and the LSE
     */
    public AttentionResult attention(int[] rows, Tensor q, AttentionOptions options) {
        return attention(rows, q, options, null);
    }

    /**
     * {@link #attention(int[], Tensor, AttentionOptions)} with q rotated by {@code rope} inside the call, each batch
     * entry to the last {@code Sq} positions of its sequence (see {@link #attention(Tensor, AttentionOptions, Rope)}).
     *
     * @param rows the sequence of each batch entry of q, each in {@code [0, batch())}; null for all in order
     * @param q queries {@code [rows.length, Hq, Sq, D]}, before rotation
     * @param options masking, scale and the other options of the call
     * @param rope rotates q to its positions; null for none
     * @return the output, in q's dtype, and the LSE
     */
    public AttentionResult attention(int[] rows, Tensor q, AttentionOptions options, Rope rope) {
        Objects.requireNonNull(q, "q");
        AttentionResult result = CacheRows.result(q, valueDim());
        attentionInto(rows, q, result.out(), result.lse(), options, rope);
        return result;
    }

    /**
     * {@link #attention(int[], Tensor, AttentionOptions, Rope)} into caller-owned {@code out} and {@code lse}
     * (nullable).
     *
     * @param rows the sequence of each batch entry of q, each in {@code [0, batch())}; null for all in order
     * @param q queries {@code [rows.length, Hq, Sq, D]}, before rotation when {@code rope} is set
     * @param out receives the output {@code [rows.length, Hq, Sq, Dv]}
     * @param lse receives each row's log-sum-exp, F32 {@code [rows.length, Hq, Sq, 1]}; null when not wanted
     * @param options masking, scale and the other options of the call
     * @param rope rotates q to its positions; null for none
     */
    public void attentionInto(int[] rows, Tensor q, Tensor out, Tensor lse, AttentionOptions options, Rope rope) {
        Objects.requireNonNull(q, "q");
        int[] picked = rows == null ? null : rows.clone(); // checked and used: the same copy
        int[] lens;
        if (picked == null) {
            lens = lengths.clone();
            picked = rope == null && quant == null ? null : identity(lens.length);
            if (rope != null && q.batch() != lens.length) {
                throw new IllegalArgumentException("q: batch " + q.batch() + " must equal the cache's " + lens.length
                        + " sequences (one batch entry each), or choose them with rows; q " + q.shapeString());
            }
        } else {
            if (picked.length != q.batch()) {
                throw new IllegalArgumentException("rows: length " + picked.length + " must equal the batch "
                        + q.batch() + " of q " + q.shapeString() + " (one cache sequence per batch entry)");
            }
            lens = new int[picked.length];
            for (int i = 0; i < picked.length; i++) {
                if (picked[i] < 0 || picked[i] >= batch()) {
                    throw new IllegalArgumentException("rows[" + i + "]: " + picked[i] + " must be in [0, " + batch()
                            + "), the sequences of this cache");
                }
                lens[i] = lengths[picked[i]];
            }
        }
        Tensor queries = q;
        if (rope != null) {
            // The queries are the newest positions of their sequences: under streaming a sequence keeps fewer
            // tokens than it has seen, and its positions are what it has seen.
            int[] ends = new int[picked.length];
            for (int i = 0; i < ends.length; i++) {
                ends[i] = position(picked[i]);
            }
            queries = rope.rotatedQueries(q, ends);
        }
        if (quant != null) {
            int[][] tables = new int[picked.length][];
            for (int i = 0; i < tables.length; i++) {
                tables[i] = table(picked[i]);
            }
            Backends.selected(ServingPredicates.quantized(queries, valueDim(), options))
                    .forwardQuantized(queries, quant.view(tables, lens), out, lse, options);
            return;
        }
        if (device != null && device.runs(queries, valueDim(), options)) {
            device.ready()
                    .forwardCached(
                            queries, new CacheIndex(lens, rows == null ? null : picked, null), out, lse, options);
            return;
        }
        Backends.selected(ServingPredicates.serving(queries, valueDim(), options))
                .forwardCached(
                        queries,
                        keys,
                        values,
                        new CacheIndex(lens, rows == null ? null : picked, null),
                        out,
                        lse,
                        options);
    }

    private static int[] identity(int n) {
        int[] ids = new int[n];
        Arrays.setAll(ids, i -> i);
        return ids;
    }

    /** A quantized cache as a call reads it: its pools, and fresh tables and lengths of every sequence. */
    QuantizedKv quantizedView() {
        int[][] tables = new int[batch()][];
        for (int b = 0; b < tables.length; b++) {
            tables[b] = table(b);
        }
        return quant.view(tables, lengths.clone());
    }

    private static int[] filled(int n, int value) {
        int[] a = new int[n];
        Arrays.fill(a, value);
        return a;
    }

    @Override
    public String toString() {
        return "KvCache[" + format() + ", batch " + batch() + ", " + kvHeads() + " KV heads, capacity " + capacity()
                + ", head dims " + headDim() + "/" + valueDim() + ", lengths " + Arrays.toString(lengths) + "]";
    }
}
