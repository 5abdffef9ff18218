package dev.aule.fuzz;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * The choices one fuzz case is drawn from: random while a case is first drawn, replayed (and edited) while a
 * failing case is shrunk. Every draw is an int in {@code [0, bound)} whose value 0 is the simplest choice, so
 * shrinking moves each choice towards 0 and drops the tail of the sequence (a missing choice reads as 0).
 * Generators therefore list alternatives simplest first and draw optional hostility as "on when nonzero".
 */
final class Choices {
    private final SplittableRandom random; // null while replaying
    private final int[] replay;
    private int position;
    private final List<Integer> drawn = new ArrayList<>();
    private final List<String> notes = new ArrayList<>();

    private Choices(SplittableRandom random, int[] replay) {
        this.random = random;
        this.replay = replay;
    }

    static Choices random(long seed) {
        return new Choices(new SplittableRandom(seed), null);
    }

    static Choices replay(int[] choices) {
        return new Choices(null, choices.clone());
    }

    /** A choice in {@code [0, bound)}. */
    int below(int bound) {
        if (bound <= 1) {
            return 0;
        }
        int value;
        if (random != null) {
            value = random.nextInt(bound);
        } else {
            value = position < replay.length ? Math.min(Math.max(replay[position], 0), bound - 1) : 0;
            position++;
        }
        drawn.add(value);
        return value;
    }

    /** A choice in {@code [lo, hi]}, {@code lo} the simplest. */
    int between(int lo, int hi) {
        return lo + below(hi - lo + 1);
    }

    /** True about once in {@code n} draws; false is the simplest. */
    boolean oneIn(int n) {
        return below(n) == n - 1;
    }

    /** One of {@code values}, the first the simplest. */
    @SafeVarargs
    final <T> T pick(T... values) {
        return values[below(values.length)];
    }

    int pickInt(int... values) {
        return values[below(values.length)];
    }

    /** A seed for bulk data (tensor elements), drawn as one choice. */
    long seed() {
        return below(1 << 30);
    }

    /** Records what was drawn, for the description of a failing case; returns {@code value}. */
    <T> T note(String what, T value) {
        notes.add(what + "=" + value);
        return value;
    }

    /** The value noted as {@code what}, or "" when none was. */
    String noted(String what) {
        for (String n : notes) {
            if (n.startsWith(what + "=")) {
                return n.substring(what.length() + 1);
            }
        }
        return "";
    }

    int[] drawn() {
        return drawn.stream().mapToInt(Integer::intValue).toArray();
    }

    String describe() {
        return String.join(", ", notes) + " (choices " + Arrays.toString(drawn()) + ")";
    }
}
