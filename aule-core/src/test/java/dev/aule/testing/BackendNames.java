package dev.aule.testing;

import dev.aule.Backends;
import dev.aule.spi.AttentionBackend;

import java.util.List;

/** The names of the backends a test runs on. */
public final class BackendNames {
    private BackendNames() {}

    /** The names of the backends available here: the parameter source of tests that run on each. */
    public static List<String> available() {
        return Backends.available().stream().map(AttentionBackend::name).toList();
    }
}
