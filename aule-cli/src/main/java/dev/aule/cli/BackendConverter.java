package dev.aule.cli;

import dev.aule.Backends;
import dev.aule.spi.AttentionBackend;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.TypeConversionException;

/**
 * Turns {@code --backend NAME} into a backend at parse time, so a wrong name is a usage error (exit 2). {@link
 * Main#commandLine()} registers it for every option of type {@link AttentionBackend}.
 */
final class BackendConverter implements ITypeConverter<AttentionBackend> {
    @Override
    public AttentionBackend convert(String name) {
        try {
            return Backends.get(name);
        } catch (IllegalArgumentException | IllegalStateException e) {
            throw new TypeConversionException(e.getMessage());
        }
    }
}
