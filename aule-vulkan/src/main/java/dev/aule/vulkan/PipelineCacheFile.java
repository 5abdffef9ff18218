package dev.aule.vulkan;

import java.io.IOException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Locale;

/**
 * Where the Vulkan pipeline cache lives between runs: {@code $XDG_CACHE_HOME/aule} or
 * {@code ~/.cache/aule}, one file per device (name and driver), so a driver update starts afresh. Reading
 * or writing never fails a call: an unreadable, corrupt or unwritable cache only costs compile time.
 */
final class PipelineCacheFile {
    private static final System.Logger LOG = System.getLogger(PipelineCacheFile.class.getName());
    /** System property overriding the cache directory (tests use it); empty turns the disk cache off. */
    static final String DIRECTORY_PROPERTY = "aule.vulkan.cacheDir";

    private final Path file;

    private PipelineCacheFile(Path file) {
        this.file = file;
    }

    static PipelineCacheFile forDevice(DeviceInfo info) {
        Path dir = directory();
        if (dir == null) {
            return new PipelineCacheFile(null);
        }
        String safe =
                (info.name() + "-" + info.apiVersion()).toLowerCase(Locale.ROOT).replaceAll("[^a-z0-9.]+", "-");
        return new PipelineCacheFile(dir.resolve("vulkan-pipelines-" + safe + ".bin"));
    }

    private static Path directory() {
        String forced = System.getProperty(DIRECTORY_PROPERTY);
        if (forced != null) {
            return forced.isBlank() ? null : Path.of(forced);
        }
        String xdg = System.getenv("XDG_CACHE_HOME");
        if (xdg != null && !xdg.isBlank()) {
            return Path.of(xdg, "aule");
        }
        String home = System.getProperty("user.home");
        return home == null ? null : Path.of(home, ".cache", "aule");
    }

    Path path() {
        return file;
    }

    /** The cached bytes, or none when there is no readable file. */
    byte[] read() {
        if (file == null || !Files.isRegularFile(file)) {
            return new byte[0];
        }
        try {
            return Files.readAllBytes(file);
        } catch (IOException | RuntimeException e) {
            LOG.log(System.Logger.Level.DEBUG, "vulkan pipeline cache " + file + " unreadable: " + e);
            return new byte[0];
        }
    }

    /** Replaces the file atomically where the file system allows, so a reader never sees half a cache. */
    void write(byte[] data) {
        if (file == null) {
            return;
        }
        Path tmp = null;
        try {
            Files.createDirectories(file.getParent());
            tmp = Files.createTempFile(file.getParent(), "pipelines", ".tmp");
            Files.write(tmp, data);
            try {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
            }
        } catch (IOException | RuntimeException e) {
            LOG.log(System.Logger.Level.DEBUG, "vulkan pipeline cache " + file + " not written: " + e);
            if (tmp != null) {
                try {
                    Files.deleteIfExists(tmp);
                } catch (IOException ignored) {
                    // nothing more to do: the cache is an optimisation
                }
            }
        }
    }
}
