package dev.aule.cpu.vector;

import dev.aule.cpu.TileConfig;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

import java.lang.System.Logger.Level;

/**
 * The vector width every SIMD kernel runs on, chosen once per JVM: the platform's preferred width, or the one
 * the system property {@value #PROPERTY} names (128, 256 or 512 bits) when the CPU has it, so that one machine
 * can run the kernels at every narrower width (256 bits as on AVX2, 128 as on NEON). A value the CPU lacks, or
 * one that is not a width, is logged once as a warning and the preferred width is used: the property never
 * stops the backend from loading.
 */
public final class SimdWidth {
    /** The system property that selects the width, in bits; absent or blank: the preferred width. */
    public static final String PROPERTY = "aule.cpu.vectorBits";

    /** Floats. */
    static final VectorSpecies<Float> F;
    /** Ints: the same shape as {@link #F}, as many lanes. */
    static final VectorSpecies<Integer> I;
    /** As many 16-bit lanes as {@link #F} has floats (half its width): one load widens to one float vector. */
    static final VectorSpecies<Short> H;
    /** Floats per vector. */
    static final int L;
    /** Keys per block: {@link TileConfig#KEY_BLOCK_VECTORS} vectors. */
    static final int KT;

    static {
        int preferred = FloatVector.SPECIES_PREFERRED.vectorBitSize();
        Choice choice = choose(System.getProperty(PROPERTY), preferred);
        if (choice.warning() != null) {
            System.getLogger("dev.aule.cpu").log(Level.WARNING, choice.warning());
        }
        F = FloatVector.SPECIES_PREFERRED.vectorBitSize() == choice.bits()
                ? FloatVector.SPECIES_PREFERRED
                : VectorSpecies.of(float.class, VectorShape.forBitSize(choice.bits()));
        I = F.withLanes(int.class);
        H = VectorSpecies.of(short.class, VectorShape.forBitSize(choice.bits() / 2));
        L = F.length();
        KT = TileConfig.KEY_BLOCK_VECTORS * L;
    }

    private SimdWidth() {}

    /**
     * A width to run on, and the warning to log when the configured value could not be honoured (else null).
     *
     * @param bits    128, 256 or 512
     * @param warning why the configured value was not used, or null
     */
    public record Choice(int bits, String warning) {}

    /**
     * The width for a configured value ({@code configured}: the property's value, null when unset) on a CPU
     * whose preferred width is {@code preferredBits}: the configured width when it is 128, 256 or 512 and no
     * wider than the preferred one (wider vectors than the CPU's would run the Vector API's slow Java
     * fallback), else the preferred width with a warning.
     */
    public static Choice choose(String configured, int preferredBits) {
        if (configured == null || configured.isBlank()) {
            return new Choice(preferredBits, null);
        }
        int bits;
        try {
            bits = Integer.parseInt(configured.trim());
        } catch (NumberFormatException e) {
            bits = -1;
        }
        if (bits != 128 && bits != 256 && bits != 512) {
            return new Choice(
                    preferredBits,
                    PROPERTY + " must be 128, 256 or 512, got '" + configured + "': using the preferred "
                            + preferredBits + "-bit vectors");
        }
        if (bits > preferredBits) {
            return new Choice(
                    preferredBits,
                    PROPERTY + "=" + bits + " is wider than this CPU's " + preferredBits + "-bit vectors: using those");
        }
        return new Choice(bits, null);
    }

    /** Bits per vector in use. */
    public static int bits() {
        return F.vectorBitSize();
    }

    /** Floats per vector in use. */
    public static int lanes() {
        return L;
    }

    /** Keys per block at this width: {@link TileConfig#KEY_BLOCK_VECTORS} vectors. */
    public static int keyTile() {
        return KT;
    }
}
