package dev.aule.spi;

import dev.aule.AttentionOptions;
import dev.aule.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * Memory rules a backend applies to the tensors of a call before reading or writing any of them: every
 * tensor reachable from the calling thread (its memory alive and not confined to another thread); outputs
 * writable, with distinct elements and sharing no memory with an input or another output; and whether a
 * call must stay on the caller's thread. Every failure is an {@link IllegalArgumentException} whose message
 * starts with the argument's name.
 */
public final class TensorChecks {
    /** A thread that owns nothing: only memory shared between threads is accessible by it. */
    private static final Thread PROBE = Thread.ofPlatform().unstarted(() -> {});

    private TensorChecks() {}

    /**
     * Rejects a tensor whose memory the calling thread cannot read or write now: memory of an arena that
     * was closed, or of a confined arena ({@code Arena.ofConfined()}) owned by another thread. Checked
     * during validation, so that such a call fails before it writes anything instead of part-way through.
     * A shared arena that another thread closes while the call runs is a race of the caller's: the JDK
     * then fails the call's next access with an {@link IllegalStateException}, and what was written stays.
     *
     * @param name the argument name of {@code t}, for messages
     * @param t the tensor
     * @throws IllegalArgumentException when the calling thread cannot reach {@code t}'s memory
     */
    public static void checkAccessible(String name, Tensor t) {
        MemorySegment memory = t.memory();
        if (!memory.scope().isAlive()) {
            throw new IllegalArgumentException(name + ": memory is not alive (its arena was closed); a call reads"
                    + " and writes only memory that stays open until it returns");
        }
        if (!memory.isAccessibleBy(Thread.currentThread())) {
            throw new IllegalArgumentException(name + ": memory is confined to another thread (Arena.ofConfined());"
                    + " call from the thread that owns it, or use memory shared between threads (Arena.ofShared())");
        }
    }

    /**
     * {@link #checkAccessible(String, Tensor)} for each named tensor; entries with a null tensor are skipped.
     *
     * @param tensors the tensors and their argument names
     */
    public static void checkAccessible(NamedTensor... tensors) {
        for (NamedTensor named : tensors) {
            if (named.tensor() != null) {
                checkAccessible(named.name(), named.tensor());
            }
        }
    }

    /**
     * Rejects an output that is unreachable from the calling thread ({@link #checkAccessible(String, Tensor)}),
     * read-only, whose strides make two elements share memory, or that overlaps
     * any of {@code inputs} (entries with a null tensor are skipped).
     *
     * @param name the argument name of {@code out}, for messages
     * @param out the output
     * @param inputs the inputs it must not overlap
     */
    public static void checkWritable(String name, Tensor out, NamedTensor... inputs) {
        checkAccessible(name, out);
        if (out.memory().isReadOnly()) {
            throw new IllegalArgumentException(name + ": memory is read-only");
        }
        if (!hasDistinctElements(out)) {
            throw new IllegalArgumentException(name + ": strides " + Arrays.toString(out.strides())
                    + " make distinct elements share memory, which an output cannot");
        }
        for (NamedTensor input : inputs) {
            if (input.tensor() != null) {
                checkNoOverlap(name, out, input.name(), input.tensor());
            }
        }
    }

    /**
     * Rejects an output {@code out} whose addressed bytes overlap those of {@code other}.
     *
     * @param outName the argument name of {@code out}, for messages
     * @param out the output
     * @param otherName the argument name of {@code other}
     * @param other another tensor
     */
    public static void checkNoOverlap(String outName, Tensor out, String otherName, Tensor other) {
        if (addressedRegion(out).asOverlappingSlice(addressedRegion(other)).isPresent()) {
            throw new IllegalArgumentException(outName + ": memory overlaps " + otherName
                    + "; an output must not share memory with an input or another output");
        }
    }

    /**
     * True when only one thread may touch this tensor's memory (a segment of {@code Arena.ofConfined()}):
     * backends then compute on the calling thread instead of their pool.
     *
     * @param t the tensor
     * @return whether its memory is thread-confined
     */
    public static boolean isThreadConfined(Tensor t) {
        return !t.memory().isAccessibleBy(PROBE);
    }

    /**
     * True when any of the tensors (nulls skipped) is {@linkplain #isThreadConfined thread-confined}.
     *
     * @param tensors the tensors
     * @return whether any is thread-confined
     */
    public static boolean anyThreadConfined(Tensor... tensors) {
        for (Tensor t : tensors) {
            if (t != null && isThreadConfined(t)) {
                return true;
            }
        }
        return false;
    }

    /**
     * True when any of the tensors (nulls skipped) or any memory {@code options} holds (the bias) is
     * {@linkplain #isThreadConfined thread-confined}: what a backend asks to decide whether a call may use
     * its pool. Every tensor a call reads or writes must be among those asked about.
     *
     * @param options the options of the call, whose bias is read like an input
     * @param tensors the call's inputs and outputs
     * @return whether any is thread-confined
     */
    public static boolean anyThreadConfined(AttentionOptions options, Tensor... tensors) {
        return (options != null && options.bias() != null && isThreadConfined(options.bias()))
                || anyThreadConfined(tensors);
    }

    /** The bytes from the first to one past the last addressed element, as a slice of the memory. */
    static MemorySegment addressedRegion(Tensor t) {
        long[] shape = t.shape();
        long[] strides = t.strides();
        long last = 0;
        for (int i = 0; i < 4; i++) {
            last += (shape[i] - 1) * strides[i]; // fits: Tensor.of checked the addressed bytes fit in a long
        }
        return t.memory().asSlice(0, (last + 1) * t.dtype().byteSize());
    }

    /** True when no two logical elements share memory (required of outputs). */
    static boolean hasDistinctElements(Tensor t) {
        long[] shape = t.shape();
        long[] strides = t.strides();
        long[][] dims = new long[4][];
        for (int i = 0; i < 4; i++) {
            dims[i] = new long[] {strides[i], shape[i]};
        }
        Arrays.sort(dims, (x, y) -> Long.compare(x[0], y[0]));
        long span = 1; // elements covered by the smaller-stride dimensions
        for (long[] dim : dims) {
            if (dim[1] == 1) {
                continue;
            }
            if (dim[0] < span) {
                return false;
            }
            // At most twice the last addressed offset, which Tensor.of checked fits in a long with room
            span = Math.multiplyExact(dim[0], dim[1]);
        }
        return true;
    }
}
