package dev.aule.vulkan;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Map;

/**
 * Where the forward kernels find each batch entry's keys in a serving call: its key count (cached) and, paged,
 * its block table. A null {@code ServingKeys} is the dense call: one key count {@code Sk} for every entry and
 * contiguous {@code [B, Hkv, Sk, D]} keys.
 *
 * <p>Invariants (see the SERVING block of common.glsl): the buffers hold copies that were validated on the
 * host before this object exists ({@code 0 <= lens[b] <= p.Sk}; every block id a context reaches in
 * {@code [0, numBlocks)}); table entries past a context's last block are written as 0, never the caller's
 * unchecked values. The kernels bind the key counts at binding 6 and the table at binding 7; a call that has
 * no table binds the counts there too (a placeholder the cached variant never reads).
 *
 * @param mode 1: cached (contiguous caches, a count per entry); 2: paged; 3: cached with a row and a left pad
 *     per entry; 4: quantized (paged 8-bit codes, head-major, with a scale per KV head and block)
 * @param lens one int per batch entry
 * @param table {@code B * stride} block ids (paged; quantized: followed by the key and the value scales),
 *     {@code (row, pad)} per entry (indexed); null otherwise
 * @param blockSize keys per block, paged and quantized; 0 otherwise
 * @param stride table entries per batch entry, paged and quantized; 0 otherwise
 * @param numBlocks blocks in each pool, quantized; 0 otherwise
 */
record ServingKeys(int mode, DeviceBuffer lens, DeviceBuffer table, int blockSize, int stride, int numBlocks) {
    static final int CACHED = 1;
    static final int PAGED = 2;
    static final int INDEXED = 3;
    static final int QUANTIZED = 4;

    /** Key counts {@code lens} (validated) in a buffer of {@code scope}, written by {@code s}. */
    static ServingKeys cached(VulkanDevice device, Scope scope, Submission s, int[] lens) {
        return new ServingKeys(CACHED, ints(device, scope, s, lens), null, 0, 0, 0);
    }

    /**
     * Validated {@code lens} and {@code tables} of blocks of {@code blockSize} keys: each table's first
     * {@code ceil(lens[b] / blockSize)} entries, the rest 0.
     */
    static ServingKeys paged(
            VulkanDevice device, Scope scope, Submission s, int[][] tables, int[] lens, int blockSize) {
        int stride = stride(lens, blockSize);
        int[] flat = flatten(tables, lens, blockSize, stride, 0);
        return new ServingKeys(PAGED, ints(device, scope, s, lens), ints(device, scope, s, flat), blockSize, stride, 0);
    }

    /**
     * A quantized call's validated {@code lens} and {@code tables} (as {@link #paged}), with the validated key
     * and value scales ({@code Hkv * numBlocks} each) after the table in the same buffer, as float bits: binding
     * 7 of the SERVING 4 variant (see common.glsl).
     */
    static ServingKeys quantized(
            VulkanDevice device,
            Scope scope,
            Submission s,
            int[][] tables,
            int[] lens,
            int blockSize,
            int numBlocks,
            float[] keyScales,
            float[] valueScales) {
        int stride = stride(lens, blockSize);
        int tableInts = Math.multiplyExact(lens.length, stride);
        int[] flat = flatten(tables, lens, blockSize, stride, keyScales.length + valueScales.length);
        for (int i = 0; i < keyScales.length; i++) {
            flat[tableInts + i] = Float.floatToRawIntBits(keyScales[i]);
        }
        for (int i = 0; i < valueScales.length; i++) {
            flat[tableInts + keyScales.length + i] = Float.floatToRawIntBits(valueScales[i]);
        }
        return new ServingKeys(
                QUANTIZED, ints(device, scope, s, lens), ints(device, scope, s, flat), blockSize, stride, numBlocks);
    }

    /** The most blocks a context reaches, at least 1: the row length of the flattened tables. */
    private static int stride(int[] lens, int blockSize) {
        int stride = 1;
        for (int len : lens) {
            stride = Math.max(stride, (len + blockSize - 1) / blockSize);
        }
        return stride;
    }

    /** The tables as {@code [B, stride]}, each row's entries past its context's last block 0, then {@code extra} 0s. */
    private static int[] flatten(int[][] tables, int[] lens, int blockSize, int stride, int extra) {
        int[] flat = new int[Math.addExact(Math.multiplyExact(lens.length, stride), extra)];
        for (int b = 0; b < lens.length; b++) {
            System.arraycopy(tables[b], 0, flat, b * stride, (lens[b] + blockSize - 1) / blockSize);
        }
        return flat;
    }

    /**
     * Validated key counts {@code lens} (each entry's visible keys), and each entry's cache row and left pad,
     * interleaved at binding 7.
     */
    static ServingKeys indexed(VulkanDevice device, Scope scope, Submission s, int[] lens, int[] rows, int[] pads) {
        int[] pairs = new int[Math.multiplyExact(2, rows.length)];
        for (int b = 0; b < rows.length; b++) {
            pairs[2 * b] = rows[b];
            pairs[2 * b + 1] = pads[b];
        }
        return new ServingKeys(INDEXED, ints(device, scope, s, lens), ints(device, scope, s, pairs), 0, 0, 0);
    }

    /** Adds the serving variant's define; none for the dense call, whose variants stay as they were. */
    static void define(ServingKeys keys, Map<String, Integer> defines) {
        if (keys != null) {
            defines.put("SERVING", keys.mode);
        }
    }

    /** The forward kernels' eight bindings: the six of the dense call, then the key counts and the table. */
    static DeviceBuffer[] bind(
            ServingKeys keys,
            DeviceBuffer q,
            DeviceBuffer k,
            DeviceBuffer v,
            DeviceBuffer out,
            DeviceBuffer lse,
            DeviceBuffer slopes) {
        // Placeholders for the dense call: bound, never read (its variant declares no binding 6 or 7).
        DeviceBuffer lens = keys == null ? q : keys.lens;
        DeviceBuffer table = keys == null || keys.table == null ? lens : keys.table;
        return new DeviceBuffer[] {q, k, v, out, lse, slopes, lens, table};
    }

    /** {@code params} with the paged (or quantized) call's block size, table stride and pool size. */
    static Params params(ServingKeys keys, Params params) {
        return keys == null
                ? params
                : params.withPaging(keys.blockSize, keys.stride).withBlocks(keys.numBlocks);
    }

    private static DeviceBuffer ints(VulkanDevice device, Scope scope, Submission s, int[] values) {
        DeviceBuffer buffer =
                scope.add(DeviceBuffer.allocate(device, Math.max(1, (long) values.length) * Integer.BYTES));
        s.write(buffer, memory -> MemorySegment.copy(values, 0, memory, ValueLayout.JAVA_INT, 0, values.length));
        return buffer;
    }
}
