package dev.aule;

/**
 * Gradients of a loss with respect to the inputs of attention, shaped like q, k and v.
 *
 * @param dq the gradient with respect to q
 * @param dk the gradient with respect to k
 * @param dv the gradient with respect to v
 */
public record Gradients(Tensor dq, Tensor dk, Tensor dv) {}
