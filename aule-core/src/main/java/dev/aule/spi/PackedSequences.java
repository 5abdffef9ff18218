package dev.aule.spi;

/**
 * Where each sequence of a packed batch starts (FlashAttention's {@code cu_seqlens_q} and {@code cu_seqlens_k}):
 * sequence {@code s} is query rows {@code [cuSeqlensQ[s], cuSeqlensQ[s+1])} against keys
 * {@code [cuSeqlensK[s], cuSeqlensK[s+1])}. Both arrays have one entry per sequence plus the total.
 *
 * <p>A plain carrier: it checks nothing and holds the caller's arrays as they are. {@link ServingShapes#varlen}
 * validates a copy before a backend reads it.
 *
 * @param cuSeqlensQ where each sequence's query rows start, then the total ({@code n + 1} entries from 0)
 * @param cuSeqlensK where each sequence's keys start, then the total ({@code n + 1} entries from 0)
 */
public record PackedSequences(int[] cuSeqlensQ, int[] cuSeqlensK) {}
