package dev.aule.models;

import java.util.Arrays;

/**
 * The last hidden states of a batch of sequences, packed without padding: sequence {@code s} is rows
 * {@code [offsets[s], offsets[s+1])} of {@code hidden} values each.
 *
 * @param hidden values per token
 * @param offsets where each sequence's rows start, then the total ({@code sequences + 1} entries from 0)
 * @param values the rows, row-major
 */
public record HiddenStates(int hidden, int[] offsets, float[] values) {
    /** {@return the number of sequences} */
    public int sequences() {
        return offsets.length - 1;
    }

    /**
     * The number of tokens of a sequence.
     *
     * @param sequence its index
     * @return its token count
     */
    public int length(int sequence) {
        return offsets[sequence + 1] - offsets[sequence];
    }

    /**
     * One sequence's hidden states.
     *
     * @param sequence its index
     * @return a new array {@code [length][hidden]}, row-major
     */
    public float[] sequence(int sequence) {
        return Arrays.copyOfRange(values, offsets[sequence] * hidden, offsets[sequence + 1] * hidden);
    }
}
