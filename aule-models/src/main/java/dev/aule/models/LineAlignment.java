package dev.aule.models;

import com.sun.management.HotSpotDiagnosticMXBean;
import com.sun.management.VMOption;

import java.lang.System.Logger.Level;
import java.lang.management.ManagementFactory;

/**
 * Where the 64-byte cache lines fall inside a large {@code float[]}: the element indices that start a line when the
 * array itself starts on one.
 *
 * <p>A 512-bit load that straddles two lines costs the core two; the product kernel's panel loads ran about 9 %
 * faster on one core when every one of them began a line (a 60 x 128 by 128 x 64 block, the same panel copied to
 * each of the 16 four-byte offsets). Java gives no way to ask for an aligned array, but HotSpot's G1 (the default)
 * and Shenandoah place an array of over half a heap region at the start of its own region, and ZGC a large one at
 * the start of its page, whose boundaries are far coarser than a line; the array's elements then start {@link
 * #baseBytes()} after it, wherever the collector later moves it. Elsewhere (a smaller array, another collector or
 * VM), an index this class gives is just an index: only speed depends on it.
 */
final class LineAlignment {
    /** Floats in a 64-byte line. */
    static final int LINE_FLOATS = 16;

    private static final int BASE_BYTES = detectBaseBytes();

    private LineAlignment() {}

    /**
     * Bytes from the start of a {@code float[]} to its element 0 on this VM: 16 with HotSpot's default 12-byte
     * object header and 4-byte length, 12 with compact object headers, 20 without compressed class pointers. 16
     * where the VM does not say.
     */
    static int baseBytes() {
        return BASE_BYTES;
    }

    /** The smallest index at or after {@code index} at which a line starts in an array that starts on one. */
    static int lineStart(int index) {
        int baseFloats = BASE_BYTES / Float.BYTES;
        int misalignment = Math.floorMod(baseFloats + index, LINE_FLOATS);
        return misalignment == 0 ? index : Math.addExact(index, LINE_FLOATS - misalignment);
    }

    private static int detectBaseBytes() {
        try {
            HotSpotDiagnosticMXBean vm = ManagementFactory.getPlatformMXBean(HotSpotDiagnosticMXBean.class);
            if (vm == null) {
                return fallback("the VM has no HotSpot diagnostic bean");
            }
            if (flag(vm, "UseCompactObjectHeaders", false)) {
                return 12;
            }
            return flag(vm, "UseCompressedClassPointers", true) ? 16 : 20;
        } catch (RuntimeException | LinkageError e) {
            return fallback("the VM's object layout is unknown (" + e + ")");
        }
    }

    /** A boolean VM option's value, or {@code absent} where this VM has no such option. */
    private static boolean flag(HotSpotDiagnosticMXBean vm, String name, boolean absent) {
        try {
            VMOption option = vm.getVMOption(name);
            return Boolean.parseBoolean(option.getValue());
        } catch (IllegalArgumentException e) {
            return absent;
        }
    }

    private static int fallback(String why) {
        System.getLogger("dev.aule.models")
                .log(Level.DEBUG, "aule: weight panels assume 16-byte array headers: " + why);
        return 16;
    }
}
