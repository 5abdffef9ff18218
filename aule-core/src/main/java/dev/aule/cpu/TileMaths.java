package dev.aule.cpu;

import java.lang.System.Logger.Level;

/** Chooses the tile arithmetic: SIMD when the Vector API module is in the boot layer, scalar otherwise. */
final class TileMaths {
    private static final String VECTOR_MODULE = "jdk.incubator.vector";

    private TileMaths() {}

    static boolean vectorApiPresent() {
        return ModuleLayer.boot().findModule(VECTOR_MODULE).isPresent();
    }

    static TileMath best() {
        return Holder.BEST;
    }

    private static final class Holder {
        static final TileMath BEST = choose();

        private static TileMath choose() {
            if (vectorApiPresent()) {
                return new VectorTileMath();
            }
            System.getLogger("dev.aule.cpu")
                    .log(
                            Level.WARNING,
                            "The Vector API is not enabled: the cpu backend runs its scalar path, several times slower. "
                                    + "Start the JVM with --add-modules " + VECTOR_MODULE + " for SIMD.");
            return new ScalarTileMath();
        }
    }
}
