package dev.aule.spi;

import dev.aule.Tensor;

/**
 * A paged key/value cache as one call reads it: the two block pools and, for each sequence of the batch, its
 * block table and its length (vLLM's {@code key_cache}, {@code value_cache}, {@code block_tables} and
 * {@code context_lens}).
 *
 * <p>A plain carrier: it checks nothing and holds the caller's arrays as they are. {@link ServingShapes#paged}
 * validates it and copies the tables and lengths before a backend reads them, so a caller changing the arrays
 * during a call cannot steer a kernel outside the pools.
 *
 * @param kCache the key blocks {@code [numBlocks, Hkv, blockSize, D]}
 * @param vCache the value blocks {@code [numBlocks, Hkv, blockSize, Dv]}
 * @param blockTables each sequence's block ids, in position order: {@code blockTables[b][i]} holds positions
 *     {@code [i * blockSize, (i + 1) * blockSize)} of sequence {@code b}
 * @param contextLens cached tokens of each sequence
 */
public record PagedKv(Tensor kCache, Tensor vCache, int[][] blockTables, int[] contextLens) {}
