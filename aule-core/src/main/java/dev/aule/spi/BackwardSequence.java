package dev.aule.spi;

import dev.aule.Gradients;

/**
 * One sequence of a packed variable-length backward ({@link ServingShapes#varlenBackward}), as zero-copy batch-1
 * views, so a backend runs it as a plain backward: its query rows, keys and values, output, output gradient and LSE,
 * and the views of {@code dq}, {@code dk} and {@code dv} its gradients go to.
 *
 * @param inputs the sequence's q {@code [1, Hq, rows, D]}, k and v {@code [1, Hkv, keys, D]}, out, dOut and lse
 * @param grads the sequence's rows of dq, dk and dv
 * @param index the sequence's place in the packed batch: the batch index dropout and per-batch ALiBi slopes see
 */
public record BackwardSequence(BackwardInputs inputs, Gradients grads, int index) {}
