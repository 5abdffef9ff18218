package dev.aule.spi;

import dev.aule.AttentionOptions;
import dev.aule.Tensor;

/**
 * Key/value storage that a backend keeps in its own memory (a GPU's), for {@link dev.aule.serving.KvCache} and
 * {@link dev.aule.serving.PagedKvCache} built with a backend: keys {@code [entries, Hkv, rows, D]} and values
 * {@code [entries, Hkv, rows, Dv]} (cache rows and capacity, or blocks and block size), written a few rows at a
 * time and read by attention where they live. Made by {@link AttentionBackend#allocateKv}; the caches call it,
 * users do not.
 *
 * <p>Every method may be called from the cache's one thread only; {@link #close()} frees the memory and is
 * idempotent.
 */
public interface DeviceKv extends AutoCloseable {
    /**
     * The backend holding the storage.
     *
     * @return its name, as {@link AttentionBackend#name()}
     */
    String backend();

    /**
     * What attention on this storage runs: its head-dim limit, dtypes and features (serving calls whose options
     * these do not cover run on the host copy instead).
     *
     * @return the capabilities of {@link #backend()}
     */
    Capabilities capabilities();

    /**
     * The bytes of keys and values on the device.
     *
     * @return the bytes
     */
    long bytes();

    /**
     * Copies, for each {@code i}, host key rows {@code keyRows[i]} {@code [n_b, Hkv, n, D]} and value rows
     * {@code valueRows[i]} {@code [n_b, Hkv, n, Dv]} into entries {@code [entries[i], entries[i] + n_b)}, rows
     * {@code [rows[i], rows[i] + n)}, leaving every other row as it is: all of one cache operation's changed rows in
     * one transfer. Writes to the same rows carry the same host data (they are read from the host now).
     *
     * @param entries the first entry (cache row or block) of each write
     * @param rows the first row of each write in its entries
     * @param keyRows the key rows of each write, any layout and dtype (rounded to the storage's)
     * @param valueRows the value rows of each write
     */
    void writeRows(int[] entries, int[] rows, Tensor[] keyRows, Tensor[] valueRows);

    /**
     * Cached attention of host q on this storage (see {@link AttentionBackend#forwardCached(Tensor, Tensor, Tensor,
     * CacheIndex, Tensor, Tensor, AttentionOptions)}), writing host {@code out} and {@code lse}.
     *
     * @param q queries {@code [B, Hq, Sq, D]}
     * @param index each entry's length, and optionally cache row and left pad
     * @param out receives the output {@code [B, Hq, Sq, Dv]}
     * @param lse receives the F32 log-sum-exp {@code [B, Hq, Sq, 1]}; null when not wanted
     * @param options masking, scale and the other options of the call
     */
    void forwardCached(Tensor q, CacheIndex index, Tensor out, Tensor lse, AttentionOptions options);

    /**
     * Paged attention of host q on this storage as a block pool (see {@link AttentionBackend#forwardPaged}).
     *
     * @param q queries {@code [B, Hq, Sq, D]}
     * @param blockTables each sequence's block ids in position order
     * @param contextLens each sequence's cached tokens
     * @param out receives the output {@code [B, Hq, Sq, Dv]}
     * @param lse receives the F32 log-sum-exp {@code [B, Hq, Sq, 1]}; null when not wanted
     * @param options masking, scale and the other options of the call
     */
    void forwardPaged(
            Tensor q, int[][] blockTables, int[] contextLens, Tensor out, Tensor lse, AttentionOptions options);

    /** Frees the device memory; idempotent. */
    @Override
    void close();
}
