package dev.aule.cpu;

import dev.aule.AttentionOptions;
import dev.aule.Tensor;
import dev.aule.spi.AttentionShape;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;

/**
 * Several independent sequences in one pool round-trip: the sequences of a cache with a length
 * each, of a paged cache, or of a packed variable-length batch. Each is a {@link FlashForward} over
 * its own views and key source; their work items are concatenated (longest sequences first) and
 * taken from one shared counter. Each sequence's tiles and key splits are its own {@link ForwardPlan},
 * decided on its shape alone, so a sequence gets the bits it would get in a call by itself, whatever
 * the other sequences and the order their items run in.
 */
final class SequenceForward {
    private final List<Sequence> sequences = new ArrayList<>();
    private final TileMath math;
    private final AttentionOptions options;
    private final int queryHeads;
    private final int kvHeads;
    private final int headDim;
    private final int valueDim;

    /** One sequence: its query rows, outputs, and {@code keyLen} keys and values. */
    private record Sequence(
            Tensor q, Tensor out, Tensor lse, KvRows k, KvRows v, int keyLen, AttentionShape shape, int index) {}

    SequenceForward(TileMath math, AttentionOptions options, int queryHeads, int kvHeads, int headDim, int valueDim) {
        this.math = math;
        this.options = options;
        this.queryHeads = queryHeads;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        this.valueDim = valueDim;
    }

    /**
     * Adds a sequence of {@code q.seqLen()} rows ({@code q}, {@code out}, {@code lse}: batch-1 views, lse
     * nullable) against {@code keyLen} keys; with no keys its rows are written at once (0 and {@code -inf}).
     * {@code index} is the batch index its dropout and per-batch ALiBi see.
     */
    void add(Tensor q, Tensor out, Tensor lse, KvRows k, KvRows v, int keyLen, int index) {
        if (keyLen == 0) {
            out.fill(0f);
            if (lse != null) {
                writeEmptyLse(lse, options);
            }
            return;
        }
        AttentionShape shape = new AttentionShape(1, queryHeads, kvHeads, q.seqLen(), keyLen, headDim, valueDim);
        sequences.add(new Sequence(q, out, lse, k, v, keyLen, shape, index));
    }

    /** The LSE of rows that see no key: {@code -inf}, or each head's sink logit (the sink takes all the weight). */
    static void writeEmptyLse(Tensor lse, AttentionOptions options) {
        if (!options.hasSinks()) {
            lse.fill(Float.NEGATIVE_INFINITY);
            return;
        }
        for (int b = 0; b < lse.batch(); b++) {
            for (int h = 0; h < lse.heads(); h++) {
                for (int i = 0; i < lse.seqLen(); i++) {
                    lse.set(b, h, i, 0, options.sink(h));
                }
            }
        }
    }

    /** Runs every added sequence on at most {@code maxWorkers} workers. */
    void run(int maxWorkers) {
        if (sequences.isEmpty()) {
            return;
        }
        sequences.sort(Comparator.comparingLong((Sequence s) -> (long) s.q().seqLen() * s.keyLen())
                .reversed());
        FlashForward[] calls = new FlashForward[sequences.size()];
        int[] firstItem = new int[calls.length + 1];
        double flops = 0;
        for (int i = 0; i < calls.length; i++) {
            Sequence s = sequences.get(i);
            flops += CpuPool.flopsBound(s.shape());
            calls[i] = new FlashForward(math, s.shape(), options, s.q(), s.k(), s.v(), s.out(), s.lse(), s.index());
            firstItem[i + 1] = Math.addExact(firstItem[i], calls[i].items());
        }
        CpuPool.forEach(firstItem[calls.length], CpuPool.workersFor(flops, maxWorkers), index -> {
            int found = Arrays.binarySearch(firstItem, index);
            int call = found >= 0 ? found : -found - 2; // every call has at least one item
            Scratch scratch = Scratch.acquire();
            try {
                calls[call].run(index - firstItem[call], scratch);
            } finally {
                Scratch.release(scratch);
            }
        });
    }
}
