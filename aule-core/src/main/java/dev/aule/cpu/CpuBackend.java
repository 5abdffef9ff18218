package dev.aule.cpu;

import dev.aule.AttentionBackend;
import dev.aule.AttentionOptions;
import dev.aule.AttentionShape;
import dev.aule.Availability;
import dev.aule.Capabilities;
import dev.aule.DType;
import dev.aule.Tensor;

import java.util.EnumSet;

/**
 * FlashAttention on all cores: Vector API SIMD when {@code jdk.incubator.vector} is present, a
 * scalar path otherwise. Always available. Safe for concurrent callers: all calls share one pool
 * sized to the cores and keep their state in per-call objects and pooled scratch.
 */
public final class CpuBackend implements AttentionBackend {
    /** Largest head dim of q, k or v. */
    public static final int MAX_HEAD_DIM = 512;

    private static final Capabilities CAPABILITIES =
            new Capabilities(MAX_HEAD_DIM, EnumSet.allOf(DType.class), true, true);

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
        int workers = Tensor.anyThreadConfined(q, k, v, out, lse) ? 1 : Integer.MAX_VALUE;
        CpuPool.forEach(call.items(), workers, index -> {
            Scratch scratch = Scratch.acquire();
            try {
                call.run(index, scratch);
            } finally {
                Scratch.release(scratch);
            }
        });
    }

    /** FlashAttention-2 backward ({@link FlashBackward}): deterministic, bitwise the same on any number of threads. */
    @Override
    public void backward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor dOut, Tensor lse,
                         Tensor dq, Tensor dk, Tensor dv, AttentionOptions options) {
        int workers = Tensor.anyThreadConfined(q, k, v, out, dOut, lse, dq, dk, dv) ? 1 : Integer.MAX_VALUE;
        backward(q, k, v, out, dOut, lse, dq, dk, dv, options, workers);
    }

    /** The backward on at most {@code maxWorkers} workers; the result does not depend on it. */
    void backward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor dOut, Tensor lse,
                  Tensor dq, Tensor dk, Tensor dv, AttentionOptions options, int maxWorkers) {
        AttentionShape shape = AttentionShape.backward(q, k, v, out, dOut, lse, dq, dk, dv, options, CAPABILITIES);
        new FlashBackward(math, shape, options, q, k, v, out, dOut, lse, dq, dk, dv).compute(maxWorkers);
    }
}
