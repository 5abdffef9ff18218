package dev.aule.cpu.vector;

/**
 * What the softmax backward of one tile pair reads about its query rows, per query head: row {@code i}'s
 * log-sum-exp {@code lse[i]} and {@code delta[i] = rowsum(dOut * out)}, its visible key interval
 * {@code [first[i], last[i]]}, its diagonal {@code diag[i] = i + Sk - Sq} (the ALiBi distance's origin), the
 * call's softcap (0 = off), the head's ALiBi slope (0 = none) and {@code scoreScale}, the factor that turns a
 * tile's score into the scaled score: 1 when the queries are pre-scaled, the call's scale when they are not
 * (with a softcap or a scale above 1 in magnitude, so an extreme scale saturates or overflows the score
 * instead of overflowing the queries into NaN). The arrays are the call's own, not copies.
 */
public record BackwardRows(
        float[] lse,
        float[] delta,
        int[] first,
        int[] last,
        float[] diag,
        float softcap,
        float slope,
        float scoreScale) {}
