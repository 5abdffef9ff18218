package dev.aule.spi;

import dev.aule.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * Memory rules a backend applies to the tensors of a call before reading or writing any of them: outputs
 * writable, with distinct elements and sharing no memory with an input or another output; and whether a
 * call must stay on the caller's thread. Every failure is an {@link IllegalArgumentException} whose message
 * starts with the argument's name.
 */
public final class TensorChecks {
    /** A thread that owns nothing: only memory shared between threads is accessible by it. */
    private static final Thread PROBE = Thread.ofPlatform().unstarted(() -> {});

    private TensorChecks() {}

    /**
     * Rejects an output that is read-only, whose strides make two elements share memory, or that overlaps
     * any of {@code inputs} (entries with a null tensor are skipped).
     *
     * @param name the argument name of {@code out}, for messages
     * @param out the output
     * @param inputs the inputs it must not overlap
     */
    public static void checkWritable(String name, Tensor out, NamedTensor... inputs) {
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

    /** The bytes from the first to one past the last addressed element, as a slice of the memory. */
    static MemorySegment addressedRegion(Tensor t) {
        long[] shape = t.shape();
        long[] strides = t.strides();
        long last = 0;
        for (int i = 0; i < 4; i++) {
            last += (shape[i] - 1) * strides[i];
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
            span = dim[0] * dim[1];
        }
        return true;
    }
}
