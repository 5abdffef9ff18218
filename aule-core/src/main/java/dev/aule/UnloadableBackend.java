package dev.aule;

import dev.aule.spi.AttentionBackend;
import dev.aule.spi.Availability;
import dev.aule.spi.Capabilities;

import java.util.EnumSet;

/**
 * Stands in for a provider on the class path that could not be loaded or misbehaved when asked who it is
 * (its constructor threw, {@code name()} returned null, {@code availability()} threw...): listed by
 * {@link Backends#all()} with the reason, never available, never chosen, so the other backends keep working.
 */
final class UnloadableBackend implements AttentionBackend {
    private final String name;
    private final String reason;

    UnloadableBackend(String name, String reason) {
        this.name = name;
        this.reason = reason;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public String description() {
        return "a backend provider that failed to load";
    }

    @Override
    public int priority() {
        return Integer.MIN_VALUE;
    }

    @Override
    public Availability availability() {
        return Availability.unavailable(reason);
    }

    @Override
    public Capabilities capabilities() {
        return new Capabilities(1, EnumSet.noneOf(DType.class), EnumSet.noneOf(Capabilities.Feature.class));
    }

    @Override
    public void forward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, AttentionOptions options) {
        throw new BackendUnavailableException("backend '" + name + "' is not available: " + reason);
    }
}
