package dev.aule;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.ServiceLoader;
import java.util.stream.Collectors;

/**
 * Finds backends with {@link ServiceLoader} and chooses one.
 *
 * <p>{@link #selected()} honours the system property {@code aule.backend}, then the environment
 * variable {@code AULE_BACKEND}, then picks the available backend of highest priority.
 */
public final class Backends {
    /** System property naming the backend to use. */
    public static final String PROPERTY = "aule.backend";
    /** Environment variable naming the backend to use when the property is not set. */
    public static final String ENVIRONMENT = "AULE_BACKEND";

    private Backends() {
    }

    private static final class Discovered {
        static final List<AttentionBackend> ALL = discover();

        private static List<AttentionBackend> discover() {
            List<AttentionBackend> found = new ArrayList<>();
            for (AttentionBackend backend : ServiceLoader.load(AttentionBackend.class, Backends.class.getClassLoader())) {
                if (found.stream().noneMatch(b -> b.name().equals(backend.name()))) {
                    found.add(backend);
                }
            }
            found.sort(Comparator.comparingInt(AttentionBackend::priority).reversed()
                    .thenComparing(AttentionBackend::name));
            return List.copyOf(found);
        }
    }

    /** Every backend found, available or not, in priority order. */
    public static List<AttentionBackend> all() {
        return Discovered.ALL;
    }

    /** The backends that can run here, in priority order. */
    public static List<AttentionBackend> available() {
        return all().stream().filter(b -> b.availability().available()).toList();
    }

    /**
     * The backend called {@code name}.
     *
     * @throws IllegalArgumentException when no backend has that name
     * @throws BackendUnavailableException when it exists but cannot run here
     */
    public static AttentionBackend get(String name) {
        String wanted = name == null ? "" : name.trim().toLowerCase(Locale.ROOT);
        AttentionBackend backend = all().stream().filter(b -> b.name().equals(wanted)).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("name: no backend called '" + name + "'; known: "
                        + all().stream().map(AttentionBackend::name).collect(Collectors.joining(", "))
                        + "; available: " + availableNames()));
        Availability availability = backend.availability();
        if (!availability.available()) {
            throw new BackendUnavailableException("backend '" + backend.name() + "' is not available: "
                    + availability.reason() + "; available: " + availableNames());
        }
        return backend;
    }

    /** The backend calls through {@link Attention} use: forced by property or environment, else the best available. */
    public static AttentionBackend selected() {
        String[] forced = forced();
        return forced != null ? get(forced[1]) : available().getFirst();
    }

    /** What decides {@link #selected()}, for people: the property or variable that forces it, or auto-selection. */
    public static String selectionReason() {
        String[] forced = forced();
        return forced != null ? "forced by " + forced[0] + "=" + forced[1]
                : "auto: the available backend of highest priority";
    }

    /** {@code {source, name}} of a forced backend, or null: the property wins over the environment. */
    private static String[] forced() {
        String property = System.getProperty(PROPERTY);
        if (property != null && !property.isBlank()) {
            return new String[] {"system property " + PROPERTY, property.trim()};
        }
        String environment = System.getenv(ENVIRONMENT);
        if (environment != null && !environment.isBlank()) {
            return new String[] {"environment " + ENVIRONMENT, environment.trim()};
        }
        return null;
    }

    private static String availableNames() {
        return available().stream().map(AttentionBackend::name).collect(Collectors.joining(", "));
    }
}
