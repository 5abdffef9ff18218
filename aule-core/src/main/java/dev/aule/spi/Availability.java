package dev.aule.spi;

import java.util.Objects;

/**
 * Whether a backend can run here, and if not, why.
 *
 * @param available true when the backend can run
 * @param reason a human-readable reason when unavailable, a short description of what it found otherwise
 */
public record Availability(boolean available, String reason) {
    public Availability {
        Objects.requireNonNull(reason, "reason");
    }

    public static Availability available(String found) {
        return new Availability(true, found);
    }

    public static Availability unavailable(String why) {
        return new Availability(false, why);
    }
}
