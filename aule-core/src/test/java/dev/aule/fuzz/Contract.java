package dev.aule.fuzz;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.Accuracy;

import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.regex.Pattern;

/**
 * The contract every fuzzed call is held to: either an {@link IllegalArgumentException} whose message names
 * the offending argument, with every byte of every output and cache unchanged, or a result equal to the float64
 * reference within the project's tolerance; never another exception. After a rejection the library must keep
 * working: a small valid call follows every one.
 */
final class Contract {
    private Contract() {}

    /**
     * Whether the options this thread's case drew hold an ALiBi slope whose penalty over the case's distances
     * passes the library's bound (1e30): any call taking them may then be rejected naming
     * {@code options.alibiSlopes}, whatever else it breaks. Set by {@link Draws#options}.
     */
    static final ThreadLocal<Boolean> ALIBI_BEYOND_RANGE = ThreadLocal.withInitial(() -> false);

    /** A call under test. */
    @FunctionalInterface
    interface Call {
        void run();
    }

    /** What a case broke on purpose: the argument names a rejection may give, and whether it must be rejected. */
    record Breach(String what, List<String> names, boolean mustReject) {
        static Breach none() {
            return new Breach(null, List.of(), false);
        }

        static Breach of(String what, String... names) {
            return new Breach(what, List.of(names), true);
        }

        /** A hostile but legal argument: rejection naming one of {@code names}, or a correct result. */
        static Breach mayReject(String what, String... names) {
            return new Breach(what, List.of(names), false);
        }

        boolean any() {
            return what != null;
        }
    }

    /**
     * Runs {@code call} and holds it to the contract: {@code written} are every tensor the call may write (their
     * bytes are compared after a rejection; tensors over unreachable memory are skipped), {@code verify} checks a
     * result against the reference.
     */
    static void check(Breach breach, List<Tensor> written, Call call, Call verify) {
        List<byte[]> before = snapshot(written);
        try {
            call.run();
        } catch (IllegalArgumentException e) {
            if (ALIBI_BEYOND_RANGE.get() && names(e.getMessage(), "options.alibiSlopes")) {
                assertUnchanged(written, before, "an ALiBi slope beyond the float range");
                followUp();
                return;
            }
            if (!breach.any()) {
                throw new AssertionError("a valid call was rejected: " + e, e);
            }
            if (breach.names().stream().noneMatch(n -> names(e.getMessage(), n))) {
                throw new AssertionError(
                        "rejected " + breach.what() + " without naming any of " + breach.names() + ": " + e, e);
            }
            assertUnchanged(written, before, breach.what());
            followUp();
            return;
        } catch (AssertionError e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError(
                    (breach.any() ? "on " + breach.what() + ": " : "") + "threw " + e
                            + " (only IllegalArgumentException" + " is allowed)",
                    e);
        }
        if (breach.mustReject()) {
            throw new AssertionError("accepted " + breach.what() + " (no IllegalArgumentException)");
        }
        verify.run();
    }

    /** Whether {@code message} names {@code name} as a word (not inside another identifier). */
    static boolean names(String message, String name) {
        return message != null
                && Pattern.compile("(^|[^A-Za-z0-9_])" + Pattern.quote(name) + "($|[^A-Za-z0-9_])")
                        .matcher(message)
                        .find();
    }

    static List<byte[]> snapshot(List<Tensor> tensors) {
        List<byte[]> bytes = new ArrayList<>();
        for (Tensor t : tensors) {
            bytes.add(readable(t) ? t.memory().toArray(ValueLayout.JAVA_BYTE) : null);
        }
        return bytes;
    }

    static void assertUnchanged(List<Tensor> tensors, List<byte[]> before, String what) {
        for (int i = 0; i < tensors.size(); i++) {
            byte[] was = before.get(i);
            if (was == null || !readable(tensors.get(i))) {
                continue;
            }
            byte[] now = tensors.get(i).memory().toArray(ValueLayout.JAVA_BYTE);
            for (int x = 0; x < now.length; x++) {
                if (now[x] != was[x]) {
                    throw new AssertionError(
                            "rejected " + what + " but wrote output " + i + " " + tensors.get(i) + " at byte " + x);
                }
            }
        }
    }

    /** Whether this thread can read {@code t}'s memory (alive, and not confined to another thread). */
    static boolean readable(Tensor t) {
        if (t == null) {
            return false;
        }
        try {
            t.memory().get(ValueLayout.JAVA_BYTE, 0);
            return true;
        } catch (IllegalStateException | WrongThreadException e) {
            return false;
        }
    }

    /**
     * Asserts {@code actual} equals {@code expected} (the reference's result) within {@code tolerance}, by
     * {@link #relativeError}.
     */
    static void assertClose(String what, Tensor actual, Tensor expected, double tolerance) {
        double error = relativeError(actual.toFloatArray(), expected.toFloatArray());
        if (!Accuracy.within(error, tolerance)) {
            throw new AssertionError(what + ": error " + error + " against the reference (limit " + tolerance + ")"
                    + firstMismatch(actual, expected));
        }
    }

    /**
     * {@link Accuracy#relativeError} with two allowances for hostile values: where the reference is NaN (its inputs
     * make the result undefined) any value is accepted, and an infinity counts as the largest finite F32 value of
     * its sign (a result at the F32 maximum may round either way). A NaN where the reference has a number is
     * still an infinite error.
     */
    static double relativeError(float[] actual, float[] expected) {
        double maxDiff = 0;
        double maxRef = 1;
        for (int i = 0; i < actual.length; i++) {
            if (Float.isNaN(expected[i])) {
                continue;
            }
            if (Float.isNaN(actual[i])) {
                return Double.POSITIVE_INFINITY;
            }
            double a = clampToFloat(actual[i]);
            double r = clampToFloat(expected[i]);
            maxDiff = Math.max(maxDiff, Math.abs(a - r));
            maxRef = Math.max(maxRef, Math.abs(r));
        }
        return maxDiff / maxRef;
    }

    private static double clampToFloat(float x) {
        return Math.max(-Float.MAX_VALUE, Math.min(Float.MAX_VALUE, x));
    }

    /**
     * The limit of an output of {@code outType}: {@link Accuracy#forwardTolerance}, with the logit bound taken
     * over the finite elements only (hostile NaN and infinities would make it NaN or infinite).
     */
    static double outTolerance(DType outType, Tensor q, Tensor k, AttentionOptions options) {
        double typeTolerance = outType == DType.F32 ? Accuracy.F32_TOLERANCE : Accuracy.HALF_TOLERANCE;
        return Math.max(typeTolerance, Math.ulp(1f) * logitBound(q, k, options));
    }

    /** The limit of the LSE: the F32 limit of the call's logits. */
    static double lseTolerance(Tensor q, Tensor k, AttentionOptions options) {
        return outTolerance(DType.F32, q, k, options);
    }

    /**
     * An upper bound of the call's |logits| over its finite elements; with a softcap, whose logits never pass the
     * cap, at least the cap when an infinity in q or k can drive a logit to it, and at most the cap otherwise. The
     * F32 rounding of logits this large is what limits the result's accuracy (a softcap of 3e38 rounds logits by
     * 2e31).
     */
    private static double logitBound(Tensor q, Tensor k, AttentionOptions options) {
        double bound = dotBound(q, k, options);
        if (options.softcap() > 0f) {
            bound = hasNonFinite(q) || hasNonFinite(k) ? options.softcap() : Math.min(bound, options.softcap());
        }
        return bound + alibiBound(q, k, options) + biasBound(options);
    }

    /**
     * The bound of the logits before any softcap (over finite elements, ALiBi and bias included): what the
     * gradients' sensitivity to rounding grows with, a softcap or not.
     */
    static double rawLogitBound(Tensor q, Tensor k, AttentionOptions options) {
        return dotBound(q, k, options) + alibiBound(q, k, options) + biasBound(options);
    }

    private static double dotBound(Tensor q, Tensor k, AttentionOptions options) {
        return Math.abs(options.scale(q.headDim())) * finiteRowNorm(q) * finiteRowNorm(k);
    }

    private static double alibiBound(Tensor q, Tensor k, AttentionOptions options) {
        double slope = 0;
        if (options.hasAlibi()) {
            for (int b = 0; b < Math.max(1, options.alibiBatches()); b++) {
                for (int h = 0; h < options.alibiHeads(); h++) {
                    slope = Math.max(slope, Math.abs(options.alibiSlope(b, h)));
                }
            }
        }
        return slope * (q.seqLen() + k.seqLen());
    }

    /** The largest finite {@code |bias|}: a bias near the F32 maximum leaves scores no resolution below 2e31. */
    private static double biasBound(AttentionOptions options) {
        double bound = 0;
        if (options.bias() != null && readable(options.bias())) {
            for (float x : options.bias().toFloatArray()) {
                if (Float.isFinite(x)) {
                    bound = Math.max(bound, Math.abs(x));
                }
            }
        }
        return bound;
    }

    private static boolean hasNonFinite(Tensor t) {
        if (!readable(t)) {
            return false;
        }
        for (float x : t.toFloatArray()) {
            if (!Float.isFinite(x)) {
                return true;
            }
        }
        return false;
    }

    private static double finiteRowNorm(Tensor t) {
        if (!readable(t)) {
            return 0;
        }
        float[] row = new float[t.headDim()];
        double max = 0;
        for (int b = 0; b < t.batch(); b++) {
            for (int h = 0; h < t.heads(); h++) {
                for (int s = 0; s < t.seqLen(); s++) {
                    t.readRow(b, h, s, row, 0);
                    double sum = 0;
                    for (float x : row) {
                        sum += Float.isFinite(x) ? (double) x * x : 0;
                    }
                    max = Math.max(max, Math.sqrt(sum));
                }
            }
        }
        return max;
    }

    private static String firstMismatch(Tensor actual, Tensor expected) {
        float[] a = actual.toFloatArray();
        float[] r = expected.toFloatArray();
        for (int i = 0; i < a.length; i++) {
            boolean bad = Float.isNaN(a[i]) != Float.isNaN(r[i])
                    || (Float.isInfinite(a[i]) || Float.isInfinite(r[i])) && a[i] != r[i];
            if (bad || Math.abs((double) a[i] - r[i]) > 1e-3 * Math.max(1, Math.abs(r[i]))) {
                return "; first at element " + i + " (BHSD order of " + actual.shapeString() + "): " + a[i]
                        + ", reference " + r[i];
            }
        }
        return "";
    }

    /** A small valid call on every backend that must match the reference: the library still works. */
    static void followUp() {
        SplittableRandom rnd = new SplittableRandom(7);
        Tensor q = random(rnd, 1, 2, 3, 8);
        Tensor k = random(rnd, 1, 1, 5, 8);
        Tensor v = random(rnd, 1, 1, 5, 8);
        AttentionOptions causal = AttentionOptions.builder().causal(true).build();
        Tensor ref = Tensor.allocate(DType.F32, 1, 2, 3, 8);
        Backends.get("reference").forward(q, k, v, ref, null, causal);
        for (String name : List.of("cpu", "reference")) {
            Tensor out = Tensor.allocate(DType.F32, 1, 2, 3, 8);
            Backends.get(name).forward(q, k, v, out, null, causal);
            assertClose("the follow-up call on " + name + " after a rejection", out, ref, Accuracy.F32_TOLERANCE);
        }
    }

    static Tensor random(SplittableRandom rnd, int b, int h, int s, int d) {
        float[] data = new float[b * h * s * d];
        for (int i = 0; i < data.length; i++) {
            data[i] = (float) (rnd.nextDouble() * 2 - 1);
        }
        return Tensor.of(data, b, h, s, d);
    }
}
