package dev.aule.spi;

import dev.aule.Tensor;

/**
 * What a backward pass reads: the forward's inputs, its output and LSE, and the gradient of the output.
 * See {@link AttentionShape#backward} for the shapes and rules.
 *
 * @param q queries {@code [B, Hq, Sq, D]}
 * @param k keys {@code [B, Hkv, Sk, D]}
 * @param v values {@code [B, Hkv, Sk, Dv]}
 * @param out the forward output {@code [B, Hq, Sq, Dv]}
 * @param dOut the gradient of the loss with respect to {@code out}, shaped like it
 * @param lse the forward's log-sum-exp, F32 {@code [B, Hq, Sq, 1]}
 */
public record BackwardInputs(Tensor q, Tensor k, Tensor v, Tensor out, Tensor dOut, Tensor lse) {}
