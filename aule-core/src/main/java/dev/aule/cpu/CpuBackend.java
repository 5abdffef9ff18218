package dev.aule.cpu;

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

import java.util.EnumSet;

/**
 * FlashAttention on all cores: Vector API SIMD when {@code jdk.incubator.vector} is present, a
 * scalar path otherwise. Always available. Safe for concurrent callers: all calls share one pool
 * sized to the cores and keep their state in per-call objects and pooled scratch.
 */
public final class CpuBackend implements AttentionBackend {
    /** Largest head dim of q, k or v. */
    public static final int MAX_HEAD_DIM = 512;

    private static final Capabilities CAPABILITIES = Capabilities.of(
            MAX_HEAD_DIM,
            EnumSet.allOf(DType.class),
            Feature.BACKWARD,
            Feature.MASKS,
            Feature.SERVING,
            Feature.DROPOUT,
            Feature.ALIBI_PER_BATCH,
            Feature.SINKS,
            Feature.QUANTIZED_KV);

    private final TileMath math;

    /** The backend on the best tile arithmetic this JVM offers. */
    public CpuBackend() {
        this(TileMaths.best());
    }

    CpuBackend(TileMath math) {
        this.math = math;
    }

    @Override
    public String name() {
        return "cpu";
    }

    @Override
    public String description() {
        return "FlashAttention-2 on " + CpuPool.threads() + " threads, " + math.description();
    }

    @Override
    public int priority() {
        return 100;
    }

    @Override
    public Availability availability() {
        return Availability.available(math.description() + ", " + CpuPool.threads() + " threads");
    }

    @Override
    public Capabilities capabilities() {
        return CAPABILITIES;
    }

    /** Whether this instance runs the Vector API path. */
    public boolean simd() {
        return math.lanes() > 1;
    }

    @Override
    public void forward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, AttentionOptions options) {
        AttentionShape shape = AttentionShape.forward(q, k, v, out, lse, options, CAPABILITIES);
        FlashForward call = new FlashForward(math, shape, options, q, k, v, out, lse);
        int workers = TensorChecks.anyThreadConfined(options, q, k, v, out, lse) ? 1 : Integer.MAX_VALUE;
        CpuPool.forEach(call.items(), CpuPool.workersFor(CpuPool.flopsBound(shape), workers), index -> {
            Scratch scratch = Scratch.acquire();
            try {
                call.run(index, scratch);
            } finally {
                Scratch.release(scratch);
            }
        });
    }

    /** Each sequence of the cache runs the same tiled kernel on its own length; all share one pool round-trip. */
    @Override
    public void forwardCached(
            Tensor q, Tensor kCache, Tensor vCache, int[] cacheLens, Tensor out, Tensor lse, AttentionOptions options) {
        int[] lens = cacheLens == null ? null : cacheLens.clone(); // validated and used: the same copy
        AttentionShape shape = ServingShapes.cached(q, kCache, vCache, lens, out, lse, options, CAPABILITIES);
        SequenceForward call = sequences(shape, options);
        for (SequenceView view : ServingShapes.cachedSequences(q, kCache, vCache, lens, out, lse)) {
            add(call, view);
        }
        call.run(workers(q, kCache, vCache, out, lse));
    }

    /**
     * Each batch entry is a view of its cache row's keys {@code [cacheLeftpad[b], cacheLens[b])}, run as in the plain
     * cached call; rows read by several entries are read by each, and nothing depends on which entries share one.
     */
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
        SequenceForward call = sequences(cached.shape(), options);
        for (SequenceView view : ServingShapes.cachedSequences(q, kCache, vCache, cached, out, lse)) {
            add(call, view);
        }
        call.run(workers(q, kCache, vCache, out, lse));
    }

    /**
     * Keys and values go through {@link PagedRows}: F32 pools that keep a head's blocks one after another are
     * read in place by decode tiles, one run of adjacent blocks at a time; others are copied page by page.
     */
    @Override
    public void forwardPaged(Tensor q, PagedKv cache, Tensor out, Tensor lse, AttentionOptions options) {
        ServingShapes.PagedCall paged = ServingShapes.paged(q, cache, out, lse, options, CAPABILITIES);
        AttentionShape shape = paged.shape();
        SequenceForward call = sequences(shape, options);
        for (int b = 0; b < shape.batch(); b++) {
            int[] table = paged.blockTables()[b];
            call.add(
                    q.sequence(b, 0, shape.queryLen()),
                    out.sequence(b, 0, shape.queryLen()),
                    lse == null ? null : lse.sequence(b, 0, shape.queryLen()),
                    new PagedRows(cache.kCache(), table),
                    new PagedRows(cache.vCache(), table),
                    paged.contextLens()[b],
                    b);
        }
        call.run(workers(q, cache.kCache(), cache.vCache(), out, lse));
    }

    /**
     * Each sequence is a view of its rows against its blocks through {@link PagedRows}, as {@link #forwardPaged}
     * reads them; decode rows and prefill chunks share one pool round-trip, each with its own plan.
     */
    @Override
    public void forwardVarlenPaged(
            Tensor q, PagedKv cache, int[] cuSeqlensQ, Tensor out, Tensor lse, AttentionOptions options) {
        ServingShapes.VarlenPagedCall paged =
                ServingShapes.varlenPaged(q, cache, cuSeqlensQ, out, lse, options, CAPABILITIES);
        SequenceForward call = sequences(paged.shape(), options);
        for (int s = 0; s < paged.sequences(); s++) {
            int rows = paged.rows(s);
            if (rows == 0) {
                continue;
            }
            int q0 = paged.cuSeqlensQ()[s];
            int[] table = paged.blockTables()[s];
            call.add(
                    q.sequence(0, q0, rows),
                    out.sequence(0, q0, rows),
                    lse == null ? null : lse.sequence(0, q0, rows),
                    new PagedRows(cache.kCache(), table),
                    new PagedRows(cache.vCache(), table),
                    paged.contextLens()[s],
                    s);
        }
        call.run(workers(q, cache.kCache(), cache.vCache(), out, lse));
    }

    /**
     * Keys and values go through {@link QuantRows}: each tile's rows are dequantized from the codes straight into
     * the kernel's packed scratch (the validated copies of the tables and scales), so the same tiles as every
     * other call run on them.
     */
    @Override
    public void forwardQuantized(Tensor q, QuantizedKv cache, Tensor out, Tensor lse, AttentionOptions options) {
        QuantizedShapes.QuantizedCall call = QuantizedShapes.quantized(q, cache, out, lse, options, CAPABILITIES);
        AttentionShape shape = call.shape();
        SequenceForward sequences = sequences(shape, options);
        for (int b = 0; b < shape.batch(); b++) {
            int[] table = call.blockTables()[b];
            sequences.add(
                    q.sequence(b, 0, shape.queryLen()),
                    out.sequence(b, 0, shape.queryLen()),
                    lse == null ? null : lse.sequence(b, 0, shape.queryLen()),
                    new QuantRows(
                            cache.format(),
                            true,
                            cache.keyCodes(),
                            call.keyScales(),
                            call.keyRowsAbnormal(),
                            table,
                            cache.numBlocks(),
                            cache.blockSize(),
                            cache.headDim()),
                    new QuantRows(
                            cache.format(),
                            false,
                            cache.valueCodes(),
                            call.valueScales(),
                            call.valueRowsAbnormal(),
                            table,
                            cache.numBlocks(),
                            cache.blockSize(),
                            cache.valueDim()),
                    call.contextLens()[b],
                    b);
        }
        sequences.run(workers(q, out, lse));
    }

    /** Each packed sequence is a view of its rows and keys; all of them share one pool round-trip. */
    @Override
    public void forwardVarlen(
            Tensor q, Tensor k, Tensor v, PackedSequences packed, Tensor out, Tensor lse, AttentionOptions options) {
        ServingShapes.VarlenCall packedCall = ServingShapes.varlen(q, k, v, packed, out, lse, options, CAPABILITIES);
        SequenceForward call = sequences(packedCall.shape(), options);
        for (SequenceView view : packedCall.sequences()) {
            add(call, view);
        }
        call.run(workers(q, k, v, out, lse));
    }

    private static void add(SequenceForward call, SequenceView view) {
        call.add(
                view.q(),
                view.out(),
                view.lse(),
                view.k() == null ? null : KvRows.of(view.k()),
                view.v() == null ? null : KvRows.of(view.v()),
                view.keyLen(),
                view.index());
    }

    private SequenceForward sequences(AttentionShape shape, AttentionOptions options) {
        return new SequenceForward(
                math, options, shape.queryHeads(), shape.kvHeads(), shape.headDim(), shape.valueDim());
    }

    private static int workers(Tensor... tensors) {
        return TensorChecks.anyThreadConfined(tensors) ? 1 : Integer.MAX_VALUE;
    }

    /** FlashAttention-2 backward ({@link FlashBackward}): deterministic, bitwise the same on any number of threads. */
    @Override
    public void backward(BackwardInputs in, Gradients grads, AttentionOptions options) {
        Tensor[] tensors = {in.q(), in.k(), in.v(), in.out(), in.dOut(), in.lse(), grads.dq(), grads.dk(), grads.dv()};
        backward(in, grads, options, TensorChecks.anyThreadConfined(options, tensors) ? 1 : Integer.MAX_VALUE);
    }

    /**
     * Each packed sequence is a {@link FlashBackward} of its own on views of its rows and keys, one after another
     * (each on all workers), so the gradients are bitwise the same for any thread count, as the dense backward's.
     */
    @Override
    public void backwardVarlen(BackwardInputs in, PackedSequences packed, Gradients grads, AttentionOptions options) {
        Tensor[] tensors = {in.q(), in.k(), in.v(), in.out(), in.dOut(), in.lse(), grads.dq(), grads.dk(), grads.dv()};
        backwardVarlen(in, packed, grads, options, TensorChecks.anyThreadConfined(tensors) ? 1 : Integer.MAX_VALUE);
    }

    /** The packed backward on at most {@code maxWorkers} workers; the result does not depend on it. */
    void backwardVarlen(
            BackwardInputs in, PackedSequences packed, Gradients grads, AttentionOptions options, int maxWorkers) {
        ServingShapes.VarlenBackwardCall call = ServingShapes.varlenBackward(in, packed, grads, options, CAPABILITIES);
        grads.dq().fill(0f); // rows of sequences without keys, keys of sequences without rows
        grads.dk().fill(0f);
        grads.dv().fill(0f);
        for (BackwardSequence s : call.sequences()) {
            AttentionShape shape = call.shapeOf(s);
            new FlashBackward(math, shape, options, s.inputs(), s.grads(), s.index())
                    .compute(CpuPool.workersFor(2.5 * CpuPool.flopsBound(shape), maxWorkers));
        }
    }

    /** The backward on at most {@code maxWorkers} workers; the result does not depend on it. */
    void backward(BackwardInputs in, Gradients grads, AttentionOptions options, int maxWorkers) {
        AttentionShape shape = AttentionShape.backward(in, grads, options, CAPABILITIES);
        // 2.5 forwards' FLOPs, the contract's count for the backward.
        new FlashBackward(math, shape, options, in, grads)
                .compute(CpuPool.workersFor(2.5 * CpuPool.flopsBound(shape), maxWorkers));
    }
}
