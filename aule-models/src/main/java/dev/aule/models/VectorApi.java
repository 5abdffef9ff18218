package dev.aule.models;

/**
 * Whether the Vector API module is in the boot layer (the JVM was started with {@code --add-modules
 * jdk.incubator.vector}): the encoder's kernels then take their Vector API forms, each in a nested class that only
 * this answer lets load, else the scalar loops with the same bits.
 */
final class VectorApi {
    static final boolean PRESENT =
            ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent();

    private VectorApi() {}
}
