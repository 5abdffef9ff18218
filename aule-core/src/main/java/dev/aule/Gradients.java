package dev.aule;

/** Gradients of a loss with respect to the inputs of attention, shaped like q, k and v. */
public record Gradients(Tensor dq, Tensor dk, Tensor dv) {
}
