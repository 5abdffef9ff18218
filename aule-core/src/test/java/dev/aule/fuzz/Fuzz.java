package dev.aule.fuzz;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * Runs a property over many drawn cases and shrinks the failing ones.
 *
 * <p>{@code -Daule.fuzz.tries=N} runs N cases of every property instead of its default (a soak);
 * {@code -Daule.fuzz.seed=S} draws other cases (the default seed is fixed, so CI runs the same cases every
 * time and a failure reproduces). A failure reports the property, the case's seed, the choices of its shrunk
 * form and what those choices drew, so a case is rebuilt by {@link Choices#replay}.
 *
 * <p>Each case runs on a worker thread, which owns the confined arenas the case allocates; a case that does
 * not finish within {@value #HANG_SECONDS} s is reported as a hang (a watchdog, not a timing check: the
 * cases are small and finish in milliseconds).
 */
final class Fuzz {
    private static final long HANG_SECONDS = 120;
    private static final int SHRINK_RUNS = 150;
    private static final int SHRUNK_REPORTS = 8;

    /** One property: draws its case from the choices and throws when the contract is broken. */
    @FunctionalInterface
    interface Property {
        void check(Choices c) throws Exception;
    }

    private Fuzz() {}

    /** The cases a property runs: {@code -Daule.fuzz.tries}, or its default. */
    static int tries(int defaultTries) {
        return Integer.getInteger("aule.fuzz.tries", defaultTries);
    }

    /** Checks {@code property} on {@link #tries} cases; fails listing the shrunk form of the first failures. */
    static void check(String name, int defaultTries, Property property) {
        long base = Long.getLong("aule.fuzz.seed", 0x5EEDL) * 0x9E3779B97F4A7C15L + name.hashCode();
        int tries = tries(defaultTries);
        ExecutorService worker = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "fuzz-" + name);
            t.setDaemon(true);
            return t;
        });
        try {
            Map<String, String> reports = new LinkedHashMap<>();
            int failing = 0;
            for (int i = 0; i < tries; i++) {
                long seed = base + i;
                Choices c = Choices.random(seed);
                Throwable t = run(worker, property, c);
                if (t == null) {
                    continue;
                }
                failing++;
                String kind = kind(t) + " " + c.noted("values");
                if (t instanceof Hang) {
                    reports.put(kind, "seed " + seed + ": " + t.getMessage());
                    break; // the worker is stuck: no shrinking, no more cases
                }
                if (reports.size() < SHRUNK_REPORTS && !reports.containsKey(kind)) {
                    reports.put(
                            kind, "seed " + seed + ": " + shrink(worker, property, c.drawn(), t, c.noted("values")));
                }
            }
            if (failing > 0) {
                fail(name + ": " + failing + " of " + tries + " cases broke the contract. Shrunk failures:\n  "
                        + String.join("\n  ", reports.values()));
            }
        } finally {
            worker.shutdownNow();
        }
    }

    /** A failure's kind: its message up to the first digit, so one defect is reported once. */
    private static String kind(Throwable t) {
        String m = String.valueOf(t.getMessage());
        int cut = m.length();
        for (int i = 0; i < m.length(); i++) {
            if (Character.isDigit(m.charAt(i)) || m.charAt(i) == '\n') {
                cut = i;
                break;
            }
        }
        return t.getClass().getName() + ":" + m.substring(0, Math.min(cut, 60));
    }

    /** Shrinks a failing case to simpler choices that fail the same way, with the same hostile values. */
    private static String shrink(
            ExecutorService worker, Property property, int[] choices, Throwable failure, String values) {
        int[] best = choices;
        Throwable bestFailure = failure;
        int runs = 0;
        boolean improved = true;
        while (improved && runs < SHRINK_RUNS && !(bestFailure instanceof Hang)) {
            improved = false;
            for (int[] candidate : candidates(best)) {
                if (runs++ >= SHRINK_RUNS) {
                    break;
                }
                Choices c = Choices.replay(candidate);
                Throwable t = run(worker, property, c);
                if (t != null
                        && !(t instanceof Hang)
                        && kind(t).equals(kind(failure))
                        && c.noted("values").equals(values)) {
                    best = c.drawn();
                    bestFailure = t;
                    improved = true;
                    break;
                }
            }
        }
        Choices c = Choices.replay(best);
        Throwable last = run(worker, property, c);
        Throwable shown = last == null ? bestFailure : last;
        return c.describe() + "\n    -> " + describe(shown);
    }

    /** Simpler choice sequences: shorter, then each choice zeroed, halved, decremented. */
    private static List<int[]> candidates(int[] x) {
        List<int[]> out = new ArrayList<>();
        for (int size = Math.max(1, x.length / 2); size >= 1; size /= 2) {
            for (int from = x.length - size; from >= 0; from -= size) {
                int[] y = new int[x.length - size];
                System.arraycopy(x, 0, y, 0, from);
                System.arraycopy(x, from + size, y, from, x.length - from - size);
                out.add(y);
            }
        }
        for (int i = 0; i < x.length; i++) {
            if (x[i] != 0) {
                out.add(with(x, i, 0));
                if (x[i] > 1) {
                    out.add(with(x, i, x[i] / 2));
                }
                out.add(with(x, i, x[i] - 1));
            }
        }
        return out;
    }

    private static int[] with(int[] x, int i, int value) {
        int[] y = x.clone();
        y[i] = value;
        return y;
    }

    private static String describe(Throwable t) {
        StringBuilder s = new StringBuilder(String.valueOf(t));
        if (!(t instanceof AssertionError) && !(t instanceof Hang)) {
            StackTraceElement[] stack = t.getStackTrace();
            for (int i = 0; i < Math.min(6, stack.length); i++) {
                s.append("\n       at ").append(stack[i]);
            }
        }
        return s.toString();
    }

    /** Null when the case held the contract, else what broke it. */
    private static Throwable run(ExecutorService worker, Property property, Choices c) {
        Future<?> f = worker.submit(() -> {
            Contract.ALIBI_BEYOND_RANGE.remove(); // a case's own draws set it
            try {
                property.check(c);
            } catch (IllegalArgumentException e) {
                // Options the library refuses wherever they are first used (a case's set-up included) hold the
                // contract: the refusal names them.
                if (!Contract.ALIBI_BEYOND_RANGE.get() || !Contract.names(e.getMessage(), "options.alibiSlopes")) {
                    throw e;
                }
            }
            return null;
        });
        try {
            f.get(HANG_SECONDS, TimeUnit.SECONDS);
            return null;
        } catch (ExecutionException e) {
            return e.getCause();
        } catch (TimeoutException e) {
            f.cancel(true);
            return new Hang("no result after " + HANG_SECONDS + " s: " + c.describe());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return e;
        }
    }

    /** A case that did not finish. */
    static final class Hang extends RuntimeException {
        Hang(String message) {
            super(message);
        }
    }
}
