package dev.aule.vulkan;

import java.lang.foreign.Arena;
import java.lang.foreign.SymbolLookup;
import java.util.Locale;

/**
 * Looks for the system's Vulkan loader before LWJGL is touched. When LWJGL fails to load a library it
 * prints its own diagnosis on standard error, which on a machine without Vulkan would greet every
 * {@code aule} command; checked first, the backend just reports itself unavailable and says why.
 */
final class VulkanLoader {
    /** LWJGL's property for a loader of another name or path: with it set, LWJGL alone decides. */
    static final String LIBRARY_NAME_PROPERTY = "org.lwjgl.vulkan.libname";

    private VulkanLoader() {}

    /**
     * Why Vulkan cannot be used here, or null when the loader is found or cannot be checked first (a
     * loader named by {@link #LIBRARY_NAME_PROPERTY}; macOS, where LWJGL ships MoltenVK itself).
     */
    static String missingReason() {
        if (System.getProperty(LIBRARY_NAME_PROPERTY) != null) {
            return null;
        }
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        if (os.contains("windows")) {
            return missingReason("vulkan-1.dll");
        }
        if (os.contains("mac") || os.contains("darwin")) {
            return null;
        }
        return missingReason("libvulkan.so.1");
    }

    /** Why the loader {@code library} (a file name the system's library search resolves) is unusable, or null. */
    static String missingReason(String library) {
        try (Arena arena = Arena.ofConfined()) {
            SymbolLookup.libraryLookup(library, arena);
            return null;
        } catch (IllegalArgumentException e) {
            return noLoader(library + " not found");
        }
    }

    /** The reason given for a missing loader, with what to install. */
    static String noLoader(String detail) {
        return "no Vulkan loader (" + detail + "); install libvulkan1 and a driver"
                + " (mesa-vulkan-drivers gives the lavapipe CPU device)";
    }
}
