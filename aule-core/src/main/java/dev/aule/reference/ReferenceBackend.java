package dev.aule.reference;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Gradients;
import dev.aule.Tensor;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.AttentionShape;
import dev.aule.spi.Availability;
import dev.aule.spi.BackwardInputs;
import dev.aule.spi.BackwardSequence;
import dev.aule.spi.CacheIndex;
import dev.aule.spi.Capabilities;
import dev.aule.spi.Capabilities.Feature;
import dev.aule.spi.PackedSequences;
import dev.aule.spi.PagedKv;
import dev.aule.spi.QuantizedKv;
import dev.aule.spi.QuantizedShapes;
import dev.aule.spi.SequenceView;
import dev.aule.spi.ServingShapes;
import dev.aule.spi.TensorChecks;
import dev.aule.spi.Visibility;

import java.util.EnumSet;
import java.util.stream.IntStream;

/**
 * The oracle: attention in float64, written straight from the contract's semantics with no
 * tiling and no shortcuts. Slow by design; every other backend is tested against it.
 */
public final class ReferenceBackend implements AttentionBackend {
    private static final Capabilities CAPABILITIES = Capabilities.of(
            Integer.MAX_VALUE,
            EnumSet.allOf(DType.class),
            Feature.BACKWARD,
            Feature.MASKS,
            Feature.SERVING,
            Feature.DROPOUT,
            Feature.ALIBI_PER_BATCH,
            Feature.SINKS,
            Feature.QUANTIZED_KV);

    @Override
    public String name() {
        return "reference";
    }

    @Override
    public String description() {
        return "float64 oracle, straight from the semantics (slow; for verification)";
    }

    @Override
    public int priority() {
        return 0;
    }

    @Override
    public Availability availability() {
        return Availability.available("always");
    }

    @Override
    public Capabilities capabilities() {
        return CAPABILITIES;
    }

    @Override
    public void forward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, AttentionOptions options) {
        forward(AttentionShape.forward(q, k, v, out, lse, options, CAPABILITIES), q, k, v, out, lse, options, 0);
    }

    /**
     * A validated forward whose batch entry 0 is batch {@code batchBase} for dropout and per-batch ALiBi (a
     * sequence's index).
     */
    private void forward(
            AttentionShape shape,
            Tensor q,
            Tensor k,
            Tensor v,
            Tensor out,
            Tensor lse,
            AttentionOptions options,
            int batchBase) {
        Scores scores = new Scores(shape, options, batchBase);
        IntStream heads = IntStream.range(0, shape.batch() * shape.queryHeads());
        if (!TensorChecks.anyThreadConfined(options, q, k, v, out, lse)) {
            heads = heads.parallel();
        }
        heads.forEach(bh -> {
            int b = bh / shape.queryHeads();
            int h = bh % shape.queryHeads();
            forwardHead(shape, scores, q, k, v, out, lse, b, h);
        });
    }

    /** Each sequence is a plain forward on views of its rows and of its cached prefix. */
    @Override
    public void forwardCached(
            Tensor q, Tensor kCache, Tensor vCache, int[] cacheLens, Tensor out, Tensor lse, AttentionOptions options) {
        int[] lens = cacheLens == null ? null : cacheLens.clone();
        ServingShapes.cached(q, kCache, vCache, lens, out, lse, options, CAPABILITIES);
        for (SequenceView view : ServingShapes.cachedSequences(q, kCache, vCache, lens, out, lse)) {
            forwardSequence(view, options);
        }
    }

    /** Each batch entry is a plain forward on the view of its cache row's visible keys. */
    @Override
    public void forwardCached(
            Tensor q,
            Tensor kCache,
            Tensor vCache,
            CacheIndex index,
            Tensor out,
            Tensor lse,
            AttentionOptions options) {
        ServingShapes.CachedCall cached =
                ServingShapes.cached(q, kCache, vCache, index, out, lse, options, CAPABILITIES);
        for (SequenceView view : ServingShapes.cachedSequences(q, kCache, vCache, cached, out, lse)) {
            forwardSequence(view, options);
        }
    }

    /** Gathers each sequence's keys and values from its blocks into contiguous tensors, then a plain forward. */
    @Override
    public void forwardPaged(Tensor q, PagedKv cache, Tensor out, Tensor lse, AttentionOptions options) {
        ServingShapes.PagedCall paged = ServingShapes.paged(q, cache, out, lse, options, CAPABILITIES);
        AttentionShape shape = paged.shape();
        for (int b = 0; b < shape.batch(); b++) {
            int[] table = paged.blockTables()[b];
            int len = paged.contextLens()[b];
            forwardSequence(
                    new SequenceView(
                            q.sequence(b, 0, shape.queryLen()),
                            gather(cache.kCache(), table, len),
                            gather(cache.vCache(), table, len),
                            out.sequence(b, 0, shape.queryLen()),
                            lse == null ? null : lse.sequence(b, 0, shape.queryLen()),
                            b),
                    options);
        }
    }

    /** Each sequence's keys and values gathered from its blocks, then a plain forward of its rows. */
    @Override
    public void forwardVarlenPaged(
            Tensor q, PagedKv cache, int[] cuSeqlensQ, Tensor out, Tensor lse, AttentionOptions options) {
        ServingShapes.VarlenPagedCall paged =
                ServingShapes.varlenPaged(q, cache, cuSeqlensQ, out, lse, options, CAPABILITIES);
        for (int s = 0; s < paged.sequences(); s++) {
            int rows = paged.rows(s);
            if (rows == 0) {
                continue;
            }
            int q0 = paged.cuSeqlensQ()[s];
            int[] table = paged.blockTables()[s];
            int len = paged.contextLens()[s];
            forwardSequence(
                    new SequenceView(
                            q.sequence(0, q0, rows),
                            gather(cache.kCache(), table, len),
                            gather(cache.vCache(), table, len),
                            out.sequence(0, q0, rows),
                            lse == null ? null : lse.sequence(0, q0, rows),
                            s),
                    options);
        }
    }

    /**
     * Dequantizes each sequence's keys and values ({@code decode(code) * scale}, as float) into contiguous F32
     * tensors, then the float64 forward on them: what every backend's quantized-cache attention is compared with.
     */
    @Override
    public void forwardQuantized(Tensor q, QuantizedKv cache, Tensor out, Tensor lse, AttentionOptions options) {
        QuantizedShapes.QuantizedCall call = QuantizedShapes.quantized(q, cache, out, lse, options, CAPABILITIES);
        AttentionShape shape = call.shape();
        for (int b = 0; b < shape.batch(); b++) {
            int[] table = call.blockTables()[b];
            int len = call.contextLens()[b];
            forwardSequence(
                    new SequenceView(
                            q.sequence(b, 0, shape.queryLen()),
                            dequantize(cache, true, call.keyScales(), table, len),
                            dequantize(cache, false, call.valueScales(), table, len),
                            out.sequence(b, 0, shape.queryLen()),
                            lse == null ? null : lse.sequence(b, 0, shape.queryLen()),
                            b),
                    options);
        }
    }

    /**
     * The first {@code len} keys (or values) of one sequence of a quantized pool, each code found through the
     * layout's index ({@link QuantizedKv#keyCode}, {@link QuantizedKv#valueCode}), dequantized into an F32 tensor;
     * null when empty.
     */
    private static Tensor dequantize(QuantizedKv cache, boolean keys, float[] scales, int[] table, int len) {
        if (len == 0) {
            return null;
        }
        int blockSize = cache.blockSize();
        int dim = keys ? cache.headDim() : cache.valueDim();
        byte[] codes = keys ? cache.keyCodes() : cache.valueCodes();
        Tensor rows = Tensor.allocate(DType.F32, 1, cache.kvHeads(), len, dim);
        float[] row = new float[dim];
        for (int h = 0; h < cache.kvHeads(); h++) {
            for (int j = 0; j < len; j++) {
                int block = table[j / blockSize];
                int slot = j % blockSize;
                float scale = scales[h * cache.numBlocks() + block];
                for (int x = 0; x < dim; x++) {
                    long at = keys ? cache.keyCode(h, block, slot, x) : cache.valueCode(h, block, slot, x);
                    row[x] = cache.format().decode(codes[(int) at]) * scale;
                }
                rows.writeRow(0, h, j, row, 0);
            }
        }
        return rows;
    }

    /** Each packed sequence is a plain forward on views of its rows and keys. */
    @Override
    public void forwardVarlen(
            Tensor q, Tensor k, Tensor v, PackedSequences packed, Tensor out, Tensor lse, AttentionOptions options) {
        for (SequenceView view : ServingShapes.varlen(q, k, v, packed, out, lse, options, CAPABILITIES)
                .sequences()) {
            forwardSequence(view, options);
        }
    }

    /** One sequence; with no keys every row gets output 0 and LSE {@code -inf} (with sinks: the head's sink). */
    private void forwardSequence(SequenceView view, AttentionOptions options) {
        if (view.k() == null) {
            view.out().fill(0f);
            if (view.lse() != null) {
                Tensor lse = view.lse();
                for (int h = 0; h < lse.heads(); h++) {
                    for (int i = 0; i < lse.seqLen(); i++) {
                        lse.set(0, h, i, 0, options.sink(h)); // -inf without sinks
                    }
                }
            }
            return;
        }
        // The call was validated whole (ServingShapes); a sequence's shape is its views'.
        AttentionShape shape = new AttentionShape(
                1,
                view.q().heads(),
                view.k().heads(),
                view.q().seqLen(),
                view.k().seqLen(),
                view.q().headDim(),
                view.v().headDim());
        forward(shape, view.q(), view.k(), view.v(), view.out(), view.lse(), options, view.index());
    }

    /** The first {@code len} rows of one sequence of a paged cache, as a contiguous F32 tensor; null when empty. */
    private static Tensor gather(Tensor cache, int[] table, int len) {
        if (len == 0) {
            return null;
        }
        int blockSize = cache.seqLen();
        Tensor rows = Tensor.allocate(DType.F32, 1, cache.heads(), len, cache.headDim());
        float[] row = new float[cache.headDim()];
        for (int h = 0; h < cache.heads(); h++) {
            for (int j = 0; j < len; j++) {
                cache.readRow(table[j / blockSize], h, j % blockSize, row, 0);
                rows.writeRow(0, h, j, row, 0);
            }
        }
        return rows;
    }

    /** Gradients in float64 by {@link ReferenceBackward}, which recomputes the forward itself and ignores {@code lse}'s values. */
    @Override
    public void backward(BackwardInputs in, Gradients grads, AttentionOptions options) {
        AttentionShape shape = AttentionShape.backward(in, grads, options, CAPABILITIES);
        ReferenceBackward.run(shape, options, in, grads);
    }

    /** Each packed sequence's gradients by {@link ReferenceBackward} on views of its rows and keys. */
    @Override
    public void backwardVarlen(BackwardInputs in, PackedSequences packed, Gradients grads, AttentionOptions options) {
        ServingShapes.VarlenBackwardCall call = ServingShapes.varlenBackward(in, packed, grads, options, CAPABILITIES);
        grads.dq().fill(0f);
        grads.dk().fill(0f);
        grads.dv().fill(0f);
        for (BackwardSequence s : call.sequences()) {
            ReferenceBackward.run(call.shapeOf(s), options, s.inputs(), s.grads(), s.index());
        }
    }

    private static void forwardHead(
            AttentionShape shape, Scores pipeline, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, int b, int h) {
        int kvHead = h / shape.groupSize();
        int d = shape.headDim();
        int dv = shape.valueDim();
        Visibility visibility = pipeline.visibility();

        float[] keys = rows(k, b, kvHead);
        float[] values = rows(v, b, kvHead);
        float[] query = new float[d];
        double[] scores = new double[shape.keyLen()];
        double[] acc = new double[dv];
        float[] outRow = new float[dv];

        for (int i = 0; i < shape.queryLen(); i++) {
            q.readRow(b, h, i, query, 0);
            long dropRow = pipeline.dropoutRow(b, h, i);
            int first = visibility.first(i);
            int last = visibility.last(i);
            java.util.Arrays.fill(acc, 0.0);
            double max = Double.NEGATIVE_INFINITY;
            for (int j = first; j <= last; j++) {
                double dot = 0;
                for (int x = 0; x < d; x++) {
                    dot += (double) query[x] * keys[j * d + x];
                }
                scores[j] = pipeline.score(b, h, i, j, dot, null);
                max = Math.max(max, scores[j]);
            }
            double sink = pipeline.sink(h);
            double rowLse = sink; // no visible key: out 0, lse the sink logit (-inf without sinks)
            if (max == Double.POSITIVE_INFINITY) { // a score of +inf saturates the row onto its +inf keys
                int count = 0;
                for (int j = first; j <= last; j++) {
                    count += scores[j] == Double.POSITIVE_INFINITY ? 1 : 0;
                }
                for (int j = first; j <= last; j++) {
                    double kept = pipeline.dropoutFactor(dropRow, j);
                    if (scores[j] == Double.POSITIVE_INFINITY && kept != 0) {
                        for (int x = 0; x < dv; x++) {
                            acc[x] += kept * values[j * dv + x] / count;
                        }
                    }
                }
                rowLse = max;
            } else if (max != Double.NEGATIVE_INFINITY) { // else no visible key: out 0, lse the sink (or -inf)
                // The sink logit is one more softmax term with no value: it joins the max and the sum.
                double top = Math.max(max, sink);
                double sum = Math.exp(sink - top); // 0 without sinks
                for (int j = first; j <= last; j++) {
                    sum += Math.exp(scores[j] - top); // exp(-inf) = 0 for hidden keys
                }
                rowLse = top + Math.log(sum);
                for (int j = first; j <= last; j++) {
                    if (scores[j] == Double.NEGATIVE_INFINITY) {
                        continue; // a hidden key never influences the row, whatever its value holds
                    }
                    double p = Math.exp(scores[j] - rowLse);
                    if (p < Float.MIN_NORMAL) {
                        continue; // a pair of probability 0 in F32 adds nothing, as in the kernels (no 0 x NaN)
                    }
                    p *= pipeline.dropoutFactor(dropRow, j); // the LSE above is the undropped softmax's
                    if (p == 0) {
                        continue; // a dropped pair adds nothing either
                    }
                    for (int x = 0; x < dv; x++) {
                        acc[x] += p * values[j * dv + x];
                    }
                }
            }
            for (int x = 0; x < dv; x++) {
                outRow[x] = (float) acc[x];
            }
            out.writeRow(b, h, i, outRow, 0);
            if (lse != null) {
                lse.set(b, h, i, 0, (float) rowLse);
            }
        }
    }

    /** All rows of one head as a dense {@code [seq, dim]} float array. */
    private static float[] rows(Tensor t, int b, int h) {
        float[] rows = new float[t.seqLen() * t.headDim()];
        for (int s = 0; s < t.seqLen(); s++) {
            t.readRow(b, h, s, rows, s * t.headDim());
        }
        return rows;
    }
}
