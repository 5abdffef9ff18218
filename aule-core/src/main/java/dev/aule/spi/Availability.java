package dev.aule.spi;

import java.util.Objects;

/**
 * Whether a backend can run here, and if not, why.
 *
 * @param available true when the backend can run
 * @param reason a human-readable reason when unavailable, a short description of what it found otherwise
 */
public record Availability(boolean available, String reason) {
    /** Checks that there is a reason. */
    public Availability {
        Objects.requireNonNull(reason, "reason");
    }

    /**
     * A backend that can run here.
     *
     * @param found what it found, for people
     * @return the availability
     */
    public static Availability available(String found) {
        return new Availability(true, found);
    }

    /**
     * A backend that cannot run here.
     *
     * @param why the reason, for people
     * @return the availability
     */
    public static Availability unavailable(String why) {
        return new Availability(false, why);
    }
}
