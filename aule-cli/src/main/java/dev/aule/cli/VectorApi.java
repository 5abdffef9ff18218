package dev.aule.cli;

/**
 * Whether the incubating Vector API is in this JVM. Only {@link PreferredVectorWidth} touches its
 * classes, and only after the module is known to be present, so this works without it.
 */
final class VectorApi {
    static final String MODULE = "jdk.incubator.vector";

    private VectorApi() {}

    static boolean present() {
        return ModuleLayer.boot().findModule(MODULE).isPresent();
    }

    /** One line for people: on with its width, or off with how to turn it on. */
    static String describe() {
        if (!present()) {
            return "off (start the JVM with --add-modules " + MODULE + " for SIMD)";
        }
        return "on, preferred vector width " + PreferredVectorWidth.bits() + " bits";
    }
}
