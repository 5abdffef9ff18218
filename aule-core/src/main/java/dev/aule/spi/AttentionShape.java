package dev.aule.spi;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Gradients;
import dev.aule.Tensor;
import dev.aule.mask.AttentionMask;
import dev.aule.mask.BlockMask;

import java.util.Objects;

/**
 * The validated geometry of one attention call. Backends obtain it from {@link #forward} (or the
 * backward variant), which checks every rule of the contract and throws
 * {@link IllegalArgumentException} naming the argument, the shapes and the rule before anything is
 * read or written. Among the rules: the memory of every tensor of the call, the bias included, is alive
 * and reachable from the calling thread ({@link TensorChecks#checkAccessible(String, Tensor)}).
 *
 * @param batch {@code B}
 * @param queryHeads {@code Hq}
 * @param kvHeads {@code Hkv}, dividing {@code Hq}
 * @param queryLen {@code Sq}
 * @param keyLen {@code Sk}
 * @param headDim {@code D} of q and k
 * @param valueDim {@code Dv} of v and the output
 */
public record AttentionShape(
        int batch, int queryHeads, int kvHeads, int queryLen, int keyLen, int headDim, int valueDim) {

    /**
     * Query heads sharing one KV head ({@code Hq / Hkv}); query head {@code h} reads KV head {@code h / groupSize}.
     *
     * @return the query heads per KV head
     */
    public int groupSize() {
        return queryHeads / kvHeads;
    }

    /** {@return the expected output shape {@code [B, Hq, Sq, Dv]}} */
    public long[] outShape() {
        return new long[] {batch, queryHeads, queryLen, valueDim};
    }

    /**
     * Forward FLOPs by the contract's count: {@code 4 * B * Hq * D * visible pairs} (D the mean of D and Dv).
     *
     * @param options the masks that decide the visible pairs
     * @return the FLOPs
     */
    public double forwardFlops(AttentionOptions options) {
        long pairs = Visibility.of(queryLen, keyLen, options).pairs();
        return 2.0 * batch * queryHeads * (headDim + valueDim) * (double) pairs;
    }

    /**
     * Validates a forward call: q {@code [B, Hq, Sq, D]}, k {@code [B, Hkv, Sk, D]}, v {@code [B, Hkv, Sk, Dv]},
     * out {@code [B, Hq, Sq, Dv]}, lse (nullable) F32 {@code [B, Hq, Sq, 1]}, options against q, and head dims
     * and dtypes against the backend's capabilities. Outputs must not overlap inputs or each other.
     *
     * @param q queries {@code [B, Hq, Sq, D]}
     * @param k keys {@code [B, Hkv, Sk, D]}
     * @param v values {@code [B, Hkv, Sk, Dv]}
     * @param out receives the output {@code [B, Hq, Sq, Dv]}
     * @param lse receives each row's log-sum-exp, F32 {@code [B, Hq, Sq, 1]}; null when not wanted
     * @param options masking, scale and the other options of the call
     * @param capabilities what the backend supports; head dims and dtypes are checked against it
     * @return the validated shape
     */
    public static AttentionShape forward(
            Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, AttentionOptions options, Capabilities capabilities) {
        return forward(q, k, v, out, lse, options, capabilities, q == null ? -1 : q.batch());
    }

    /** {@link #forward} with per-batch ALiBi slopes checked against {@code batches} entries (unchecked when negative). */
    static AttentionShape forward(
            Tensor q,
            Tensor k,
            Tensor v,
            Tensor out,
            Tensor lse,
            AttentionOptions options,
            Capabilities capabilities,
            int batches) {
        AttentionShape shape = ofInputs(q, k, v, options, capabilities, batches);
        Objects.requireNonNull(out, "out");
        NamedTensor[] inputs =
                inputs(options, new NamedTensor("q", q), new NamedTensor("k", k), new NamedTensor("v", v));
        shape.checkOutput("out", out, shape.outShape(), capabilities, inputs);
        if (lse != null) {
            shape.checkLse(lse, capabilities);
            TensorChecks.checkWritable("lse", lse, inputs);
            TensorChecks.checkNoOverlap("lse", lse, "out", out);
        }
        return shape;
    }

    /**
     * Validates a backward call. The inputs are the forward's q, k, v and options, its output
     * {@code out} and LSE ({@code lse}, F32 {@code [B, Hq, Sq, 1]}), and {@code dOut}, the gradient of the
     * loss with respect to out ({@code [B, Hq, Sq, Dv]} like out). The outputs {@code dq}, {@code dk} and
     * {@code dv} have the shapes of q, k and v; each must be writable with distinct elements and share
     * memory with no input and no other gradient.
     *
     * @param in the forward's q, k, v, output and LSE, and the gradient of the output
     * @param grads receives the gradients with respect to q, k and v
     * @param options masking, scale and the other options of the call
     * @param capabilities what the backend supports; head dims and dtypes are checked against it
     * @return the validated shape
     */
    public static AttentionShape backward(
            BackwardInputs in, Gradients grads, AttentionOptions options, Capabilities capabilities) {
        Objects.requireNonNull(in, "in");
        return backward(
                in, grads, options, capabilities, in.q() == null ? -1 : in.q().batch());
    }

    /** {@link #backward} with per-batch ALiBi slopes checked against {@code batches} entries (unchecked when negative). */
    static AttentionShape backward(
            BackwardInputs in, Gradients grads, AttentionOptions options, Capabilities capabilities, int batches) {
        Objects.requireNonNull(in, "in");
        Objects.requireNonNull(grads, "grads");
        Tensor q = in.q();
        Tensor k = in.k();
        Tensor v = in.v();
        AttentionShape shape = ofInputs(q, k, v, options, capabilities, batches);
        Tensor out = Objects.requireNonNull(in.out(), "out");
        Tensor dOut = Objects.requireNonNull(in.dOut(), "dOut");
        Tensor lse = Objects.requireNonNull(in.lse(), "lse");
        Tensor dq = Objects.requireNonNull(grads.dq(), "dq");
        Tensor dk = Objects.requireNonNull(grads.dk(), "dk");
        Tensor dv = Objects.requireNonNull(grads.dv(), "dv");
        TensorChecks.checkAccessible(
                new NamedTensor("out", out), new NamedTensor("dOut", dOut), new NamedTensor("lse", lse));
        shape.checkShape("out", out, shape.outShape(), capabilities);
        shape.checkShape("dOut", dOut, shape.outShape(), capabilities);
        shape.checkLse(lse, capabilities);
        if (options.hasMasksOrScoreMods() && !capabilities.backwardMasks()) {
            throw new IllegalArgumentException("options: masks, biases and MaskMods are supported by this backend in"
                    + " the forward pass only (Capabilities.Feature.MASKS_FORWARD, not MASKS_BACKWARD or MASKS), not in the"
                    + " backward;"
                    + " use the cpu or reference backend");
        }
        if (options.scoreMod() != null && options.scoreMod().derivative() == null) {
            throw new IllegalArgumentException(
                    "options.scoreMod: the backward needs the ScoreMod's derivative d mod / d score;"
                            + " attach it with ScoreMod.withDerivative(mod, derivative)");
        }
        NamedTensor[] inputs = inputs(
                options,
                new NamedTensor("q", q),
                new NamedTensor("k", k),
                new NamedTensor("v", v),
                new NamedTensor("out", out),
                new NamedTensor("dOut", dOut),
                new NamedTensor("lse", lse));
        shape.checkOutput("dq", dq, q.shape(), capabilities, inputs);
        shape.checkOutput("dk", dk, k.shape(), capabilities, inputs);
        shape.checkOutput("dv", dv, v.shape(), capabilities, inputs);
        TensorChecks.checkNoOverlap("dk", dk, "dq", dq);
        TensorChecks.checkNoOverlap("dv", dv, "dq", dq);
        TensorChecks.checkNoOverlap("dv", dv, "dk", dk);
        return shape;
    }

    /**
     * Validates q, k, v and options alone (no outputs).
     *
     * @param q queries {@code [B, Hq, Sq, D]}
     * @param k keys {@code [B, Hkv, Sk, D]}
     * @param v values {@code [B, Hkv, Sk, Dv]}
     * @param options masking, scale and the other options of the call
     * @param capabilities what the backend supports; head dims and dtypes are checked against it
     * @return the validated shape
     */
    public static AttentionShape ofInputs(
            Tensor q, Tensor k, Tensor v, AttentionOptions options, Capabilities capabilities) {
        return ofInputs(q, k, v, options, capabilities, q == null ? -1 : q.batch());
    }

    /**
     * {@link #ofInputs} with per-batch ALiBi slopes checked against {@code batches} entries (q's batch, a paged call's
     * sequences, a packed call's sequences; unchecked when negative).
     */
    static AttentionShape ofInputs(
            Tensor q, Tensor k, Tensor v, AttentionOptions options, Capabilities capabilities, int batches) {
        Objects.requireNonNull(q, "q");
        Objects.requireNonNull(k, "k");
        Objects.requireNonNull(v, "v");
        Objects.requireNonNull(options, "options");
        Objects.requireNonNull(capabilities, "capabilities");
        TensorChecks.checkAccessible(
                inputs(options, new NamedTensor("q", q), new NamedTensor("k", k), new NamedTensor("v", v)));
        String shapes = " (q " + q.shapeString() + ", k " + k.shapeString() + ", v " + v.shapeString() + ")";
        if (k.batch() != q.batch() || v.batch() != q.batch()) {
            throw new IllegalArgumentException("k, v: batch must equal q's batch " + q.batch() + shapes);
        }
        if (k.heads() != v.heads()) {
            throw new IllegalArgumentException("v: heads " + v.heads() + " must equal k's heads " + k.heads() + shapes);
        }
        if (q.heads() % k.heads() != 0) {
            throw new IllegalArgumentException("q, k: query heads " + q.heads() + " must be a multiple of KV heads "
                    + k.heads() + " (GQA/MQA: Hq % Hkv == 0)" + shapes);
        }
        if (k.seqLen() != v.seqLen()) {
            throw new IllegalArgumentException("v: sequence length " + v.seqLen() + " must equal k's " + k.seqLen()
                    + " (one value per key)" + shapes);
        }
        if (k.headDim() != q.headDim()) {
            throw new IllegalArgumentException(
                    "k: head dim " + k.headDim() + " must equal q's head dim " + q.headDim() + shapes);
        }
        int limit = capabilities.maxHeadDim();
        if (q.headDim() > limit || v.headDim() > limit) {
            throw new IllegalArgumentException("q, v: head dim " + Math.max(q.headDim(), v.headDim())
                    + " is over this backend's limit of " + limit + shapes);
        }
        for (NamedTensor named :
                new NamedTensor[] {new NamedTensor("q", q), new NamedTensor("k", k), new NamedTensor("v", v)}) {
            Tensor t = named.tensor();
            if (!capabilities.dtypes().contains(t.dtype())) {
                throw new IllegalArgumentException(named.name() + ": dtype " + t.dtype()
                        + " is not supported by this backend " + capabilities.dtypes());
            }
        }
        if (options.hasAlibi() && options.alibiBatches() == 0 && options.alibiHeads() != q.heads()) {
            throw new IllegalArgumentException("options.alibiSlopes: length " + options.alibiHeads()
                    + " must equal the number of query heads " + q.heads() + shapes);
        }
        if (options.alibiBatches() > 0) {
            if (!capabilities.alibiPerBatch()) {
                throw new IllegalArgumentException(
                        "options.alibiSlopesPerBatch: slopes per batch entry are not supported by"
                                + " this backend (Capabilities.alibiPerBatch() is false); use per-head slopes, or the cpu or"
                                + " reference backend");
            }
            if (options.alibiHeads() != q.heads()) {
                throw new IllegalArgumentException("options.alibiSlopesPerBatch: rows of " + options.alibiHeads()
                        + " slopes must hold one per query head, " + q.heads() + shapes);
            }
            if (batches >= 0 && options.alibiBatches() != batches) {
                throw new IllegalArgumentException("options.alibiSlopesPerBatch: " + options.alibiBatches()
                        + " rows must be one per batch entry (per sequence of a packed call), " + batches + shapes);
            }
        }
        checkAlibiRange(options, Math.max(q.seqLen(), k.seqLen()));
        if (options.hasDropout() && !capabilities.dropout()) {
            throw new IllegalArgumentException("options.dropout: dropout is not supported by this backend"
                    + " (Capabilities.dropout() is false); use the cpu or reference backend");
        }
        if (options.hasSinks()) {
            if (!capabilities.sinks()) {
                throw new IllegalArgumentException("options.sinks: sink logits are not supported by this backend"
                        + " (Capabilities.sinks() is false); use the cpu or reference backend");
            }
            if (options.sinks().length != q.heads()) {
                throw new IllegalArgumentException("options.sinks: length " + options.sinks().length
                        + " must equal the number of query heads " + q.heads() + shapes);
            }
        }
        AttentionShape shape =
                new AttentionShape(q.batch(), q.heads(), k.heads(), q.seqLen(), k.seqLen(), q.headDim(), v.headDim());
        shape.checkMasks(options, capabilities, shapes);
        return shape;
    }

    /**
     * The largest {@code |slope| x distance} an ALiBi call may reach: far from the F32 maximum, so the distance
     * penalty and the score it is added to stay finite (a slope of -1e37 would turn every score into
     * {@code +inf} and the row into NaN).
     */
    static final double MAX_ALIBI_PENALTY = 1e30;

    /**
     * Rejects ALiBi slopes whose penalty over the call's longest query-key distance (below {@code maxLen}, the
     * longer of the query and key lengths) exceeds {@link #MAX_ALIBI_PENALTY}.
     */
    static void checkAlibiRange(AttentionOptions options, long maxLen) {
        if (!options.hasAlibi()) {
            return;
        }
        int batches = options.alibiBatches();
        for (int b = 0; b < Math.max(1, batches); b++) {
            for (int h = 0; h < options.alibiHeads(); h++) {
                float slope = options.alibiSlope(b, h);
                if (Math.abs((double) slope) * maxLen > MAX_ALIBI_PENALTY) {
                    throw new IllegalArgumentException(
                            (batches == 0 ? "options.alibiSlopes" : "options.alibiSlopesPerBatch")
                                    + ": slope " + (batches == 0 ? Integer.toString(h) : "[" + b + "][" + h + "]")
                                    + " (" + slope
                                    + ") times the longest distance " + maxLen + " must not exceed " + MAX_ALIBI_PENALTY
                                    + " (the score would leave the float range)");
                }
            }
        }
    }

    /**
     * Dense mask, bias and block mask against the call: extents {@code [B or 1, Hq or 1, Sq, Sk]}; the
     * backend must support them at all.
     */
    private void checkMasks(AttentionOptions options, Capabilities capabilities, String shapes) {
        if (!options.hasMasksOrScoreMods()) {
            return;
        }
        if (!capabilities.forwardMasks()) {
            throw new IllegalArgumentException(
                    "options: dense masks, biases, MaskMods and ScoreMods are not supported by"
                            + " this backend (Capabilities.masks() is false); use the cpu or reference backend");
        }
        if (options.scoreMod() != null && !capabilities.masks()) {
            throw new IllegalArgumentException("options.scoreMod: ScoreMods are not supported by this backend"
                    + " (it has Capabilities.Feature.MASKS_FORWARD, not MASKS: a ScoreMod is an arbitrary function of"
                    + " the score, which it cannot evaluate); use the cpu or reference backend");
        }
        AttentionMask mask = options.mask();
        if (mask != null) {
            checkMaskExtents("options.mask", mask.batch(), mask.heads(), mask.queryLen(), mask.keyLen(), shapes);
        }
        Tensor bias = options.bias();
        if (bias != null) {
            checkMaskExtents("options.bias", bias.batch(), bias.heads(), bias.seqLen(), bias.headDim(), shapes);
            if (!capabilities.dtypes().contains(bias.dtype())) {
                throw new IllegalArgumentException("options.bias: dtype " + bias.dtype()
                        + " is not supported by this backend " + capabilities.dtypes());
            }
        }
        BlockMask blockMask = options.blockMask();
        if (blockMask != null) {
            checkMaskExtents(
                    "options.blockMask",
                    blockMask.batch(),
                    blockMask.heads(),
                    blockMask.queryLen(),
                    blockMask.keyLen(),
                    shapes);
        }
    }

    private void checkMaskExtents(String name, int b, int h, int sq, int sk, String shapes) {
        if ((b != 1 && b != batch) || (h != 1 && h != queryHeads) || sq != queryLen || sk != keyLen) {
            throw new IllegalArgumentException(name + ": shape [" + b + ", " + h + ", " + sq + ", " + sk
                    + "] must be [B or 1, "
                    + "Hq or 1, Sq, Sk] = [" + batch + " or 1, " + queryHeads + " or 1, " + queryLen + ", " + keyLen
                    + "] (an extent of 1 broadcasts)" + shapes);
        }
    }

    /** The named inputs plus the bias, which outputs must not overlap either. */
    private static NamedTensor[] inputs(AttentionOptions options, NamedTensor... named) {
        if (options.bias() == null) {
            return named;
        }
        NamedTensor[] all = java.util.Arrays.copyOf(named, named.length + 1);
        all[named.length] = new NamedTensor("options.bias", options.bias());
        return all;
    }

    /** An output: the expected shape, a supported dtype, writable distinct elements, no overlap with an input. */
    void checkOutput(String name, Tensor out, long[] expected, Capabilities capabilities, NamedTensor... inputs) {
        checkShape(name, out, expected, capabilities);
        TensorChecks.checkWritable(name, out, inputs);
    }

    void checkLse(Tensor lse, Capabilities capabilities) {
        if (lse.dtype() != DType.F32) {
            throw new IllegalArgumentException("lse: dtype must be F32, got " + lse.dtype());
        }
        checkShape("lse", lse, new long[] {batch, queryHeads, queryLen, 1}, capabilities);
    }

    private void checkShape(String name, Tensor t, long[] expected, Capabilities capabilities) {
        if (!java.util.Arrays.equals(t.shape(), expected)) {
            throw new IllegalArgumentException(name + ": shape " + t.shapeString() + " must be "
                    + java.util.Arrays.toString(expected) + " for q [" + batch + ", " + queryHeads + ", " + queryLen
                    + ", " + headDim + "] and v's head dim " + valueDim + " (k and v: " + kvHeads + " heads, "
                    + keyLen + " keys)");
        }
        if (!capabilities.dtypes().contains(t.dtype())) {
            throw new IllegalArgumentException(
                    name + ": dtype " + t.dtype() + " is not supported by this backend " + capabilities.dtypes());
        }
    }
}
