package dev.aule;

/**
 * Output of a forward pass with its log-sum-exp.
 *
 * @param out attention output {@code [B, Hq, Sq, Dv]}
 * @param lse F32 {@code [B, Hq, Sq, 1]}: natural log of each row's softmax denominator,
 *            {@code -inf} for a row with no visible key
 */
public record AttentionResult(Tensor out, Tensor lse) {}
