package dev.aule;

/**
 * Attention through the {@linkplain Backends#selected() selected backend}. Shapes are
 * {@code [batch, heads, seq, headDim]}; k and v may have fewer heads than q (GQA/MQA) and v its
 * own head dim. The output has q's dtype.
 */
public final class Attention {
    private Attention() {
    }

    /** Attention output {@code [B, Hq, Sq, Dv]}. */
    public static Tensor forward(Tensor q, Tensor k, Tensor v, AttentionOptions options) {
        AttentionBackend backend = Backends.selected();
        Tensor out = allocateOut(q, k, v, options, backend);
        backend.forward(q, k, v, out, null, options);
        return out;
    }

    /** Attention output and each row's log-sum-exp (F32 {@code [B, Hq, Sq, 1]}). */
    public static AttentionResult forwardWithLse(Tensor q, Tensor k, Tensor v, AttentionOptions options) {
        AttentionBackend backend = Backends.selected();
        Tensor out = allocateOut(q, k, v, options, backend);
        Tensor lse = Tensor.allocate(DType.F32, q.batch(), q.heads(), q.seqLen(), 1);
        backend.forward(q, k, v, out, lse, options);
        return new AttentionResult(out, lse);
    }

    /**
     * Writes attention into caller-owned {@code out} (and {@code lse} when not null), so a loop can
     * reuse its buffers.
     */
    public static void forwardInto(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, AttentionOptions options) {
        Backends.selected().forward(q, k, v, out, lse, options);
    }

    /** Gradients of q, k and v, each in the dtype of its input. */
    public static Gradients backward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor dOut, Tensor lse,
                                     AttentionOptions options) {
        AttentionBackend backend = Backends.selected();
        if (!backend.capabilities().backward()) {
            throw new UnsupportedOperationException("backend " + backend.name()
                    + " has no backward pass yet: gradients arrive with the training issue");
        }
        AttentionShape.ofInputs(q, k, v, options, backend.capabilities());
        Gradients grads = new Gradients(
                Tensor.allocate(q.dtype(), q.batch(), q.heads(), q.seqLen(), q.headDim()),
                Tensor.allocate(k.dtype(), k.batch(), k.heads(), k.seqLen(), k.headDim()),
                Tensor.allocate(v.dtype(), v.batch(), v.heads(), v.seqLen(), v.headDim()));
        backend.backward(q, k, v, out, dOut, lse, grads.dq(), grads.dk(), grads.dv(), options);
        return grads;
    }

    private static Tensor allocateOut(Tensor q, Tensor k, Tensor v, AttentionOptions options, AttentionBackend backend) {
        AttentionShape shape = AttentionShape.ofInputs(q, k, v, options, backend.capabilities());
        return Tensor.allocate(q.dtype(), shape.batch(), shape.queryHeads(), shape.queryLen(), shape.valueDim());
    }
}
