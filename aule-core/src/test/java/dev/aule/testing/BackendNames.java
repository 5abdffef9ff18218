package dev.aule.testing;

import dev.aule.Backends;
import dev.aule.spi.AttentionBackend;

import java.util.List;

/** Backend names as a parameter source: {@code @MethodSource("dev.aule.testing.BackendNames#available")}. */
public final class BackendNames {
    private BackendNames() {}

    /** The names of the backends available here. */
    public static List<String> available() {
        return Backends.available().stream().map(AttentionBackend::name).toList();
    }
}
