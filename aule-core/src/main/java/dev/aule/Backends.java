package dev.aule;

import dev.aule.spi.AttentionBackend;
import dev.aule.spi.Availability;
import dev.aule.spi.Capabilities;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.ServiceConfigurationError;
import java.util.ServiceLoader;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Predicate;
import java.util.stream.Collectors;

/**
 * Finds backends with {@link ServiceLoader} and chooses one.
 *
 * <p>{@link #selected()} honours the system property {@code aule.backend}, then the environment
 * variable {@code AULE_BACKEND}, then picks the available backend of highest priority. Calls that need
 * more than that backend offers (serving entry points, masks, a larger head dim, gradients) run, unless
 * a backend is forced, on the available backend of highest priority that has it
 * ({@link #selected(Predicate)}); the first such fallback per pair of backends is logged at {@code INFO}.
 * Backends of priority 0 or less (the float64 reference oracle) are never chosen as a fallback.
 */
public final class Backends {
    /** System property naming the backend to use. */
    public static final String PROPERTY = "aule.backend";
    /** Environment variable naming the backend to use when the property is not set. */
    public static final String ENVIRONMENT = "AULE_BACKEND";

    private static final System.Logger LOG = System.getLogger(Backends.class.getName());
    private static final Set<String> LOGGED_FALLBACKS = ConcurrentHashMap.newKeySet();

    private Backends() {}

    private static final class Discovered {
        static final List<AttentionBackend> ALL = discover();

        /*
         * Invariant: discovery never throws and every entry answers name(), priority(), availability() and
         * capabilities() without throwing. A provider that cannot be instantiated, or whose identity methods
         * throw or return null, is replaced by an UnloadableBackend carrying the reason (logged once), so one
         * broken jar on the class path cannot make this class fail to initialise for everyone.
         */
        private static final int MAX_PROVIDERS = 1000;

        private static List<AttentionBackend> discover() {
            List<AttentionBackend> found = new ArrayList<>();
            Iterator<AttentionBackend> providers = ServiceLoader.load(
                            AttentionBackend.class, Backends.class.getClassLoader())
                    .iterator();
            for (int index = 1; index <= MAX_PROVIDERS; index++) { // bounded: a loader failing on every step
                AttentionBackend backend;
                try {
                    if (!providers.hasNext()) {
                        break;
                    }
                    backend = checked(providers.next());
                } catch (ServiceConfigurationError | RuntimeException | LinkageError e) {
                    backend = unloadable("unloadable-" + index, e);
                }
                String name = backend.name();
                if (found.stream().noneMatch(b -> b.name().equals(name))) {
                    found.add(backend);
                }
            }
            found.sort(Comparator.comparingInt(AttentionBackend::priority)
                    .reversed()
                    .thenComparing(AttentionBackend::name));
            return List.copyOf(found);
        }

        /** The provider itself when it answers who it is; else its stand-in with the reason. */
        private static AttentionBackend checked(AttentionBackend backend) {
            String type = backend.getClass().getName();
            try {
                String name = backend.name();
                if (name == null || name.isBlank()) {
                    return unloadable(type, "name() returned " + (name == null ? "null" : "a blank name"));
                }
                backend.priority();
                Objects.requireNonNull(backend.availability(), "availability() returned null");
                Objects.requireNonNull(backend.capabilities(), "capabilities() returned null");
                return backend;
            } catch (RuntimeException | LinkageError e) {
                return unloadable(type, e);
            }
        }

        private static AttentionBackend unloadable(String name, Throwable failure) {
            Throwable cause = failure.getCause() != null ? failure.getCause() : failure;
            return unloadable(name, failure.getMessage() + (cause == failure ? "" : " (" + cause + ")"));
        }

        private static AttentionBackend unloadable(String name, String reason) {
            LOG.log(System.Logger.Level.WARNING, "aule: backend provider " + name + " skipped: " + reason);
            return new UnloadableBackend(name, "failed to load: " + reason);
        }
    }

    /** {@return every backend found, available or not, in priority order} */
    public static List<AttentionBackend> all() {
        return Discovered.ALL;
    }

    /** {@return the backends that can run here, in priority order} */
    public static List<AttentionBackend> available() {
        return all().stream().filter(Backends::isAvailable).toList();
    }

    /** Whether a backend can run here; one whose availability check throws cannot. */
    private static boolean isAvailable(AttentionBackend backend) {
        try {
            return backend.availability().available();
        } catch (RuntimeException e) {
            return false;
        }
    }

    /**
     * The backend called {@code name}.
     *
     * @param name the backend's {@link AttentionBackend#name()}
     * @return that backend
     * @throws IllegalArgumentException when no backend has that name
     * @throws BackendUnavailableException when it exists but cannot run here
     */
    public static AttentionBackend get(String name) {
        String wanted = name == null ? "" : name.trim().toLowerCase(Locale.ROOT);
        AttentionBackend backend = all().stream()
                .filter(b -> b.name().equals(wanted))
                .findFirst()
                .orElseThrow(() -> new IllegalArgumentException("name: no backend called '" + name + "'; known: "
                        + all().stream().map(AttentionBackend::name).collect(Collectors.joining(", "))
                        + "; available: " + availableNames()));
        Availability availability;
        try {
            availability = backend.availability();
        } catch (RuntimeException e) {
            availability = Availability.unavailable("its availability check failed: " + e);
        }
        if (!availability.available()) {
            throw new BackendUnavailableException("backend '" + backend.name() + "' is not available: "
                    + availability.reason() + "; available: " + availableNames());
        }
        return backend;
    }

    /**
     * {@return the backend calls through {@link Attention} use: forced by property or environment, else the best
     * available}
     */
    public static AttentionBackend selected() {
        String[] forced = forced();
        return forced != null ? get(forced[1]) : available().getFirst();
    }

    /**
     * The backend for a call that needs what {@code can} tests, for example {@code Capabilities::serving}:
     * a forced backend as is (it rejects what it cannot run), else the available backend of highest priority
     * whose capabilities pass (of priority above 0 unless it is the first), else {@link #selected()}, so that
     * its own message explains the refusal.
     *
     * @param can what the call needs of a backend's capabilities
     * @return the backend to use
     */
    public static AttentionBackend selected(Predicate<Capabilities> can) {
        Objects.requireNonNull(can, "can");
        if (forced() != null) {
            return selected();
        }
        List<AttentionBackend> available = available();
        AttentionBackend chosen = firstCapable(available, can);
        AttentionBackend top = available.getFirst();
        if (chosen != top && LOGGED_FALLBACKS.add(top.name() + ">" + chosen.name())) {
            LOG.log(
                    System.Logger.Level.INFO,
                    "aule: backend " + top.name() + " cannot run a call (see its " + "Capabilities), so it runs on "
                            + chosen.name() + "; later fallbacks of this kind are not logged");
        }
        return chosen;
    }

    /**
     * The first of {@code candidates} (in priority order, not empty) whose capabilities pass {@code can}, skipping
     * after the first those of priority 0 or less; else the first.
     */
    static AttentionBackend firstCapable(List<AttentionBackend> candidates, Predicate<Capabilities> can) {
        AttentionBackend first = candidates.getFirst();
        for (AttentionBackend backend : candidates) {
            if ((backend == first || backend.priority() > 0) && can.test(backend.capabilities())) {
                return backend;
            }
        }
        return first;
    }

    /**
     * What decides {@link #selected()}, for people: the property or variable that forces it, or auto-selection.
     *
     * @return one line: the forcing property or variable and its value, or auto-selection
     */
    public static String selectionReason() {
        String[] forced = forced();
        return forced != null
                ? "forced by " + forced[0] + "=" + forced[1]
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
