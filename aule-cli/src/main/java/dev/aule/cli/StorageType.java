package dev.aule.cli;

import dev.aule.DType;
import picocli.CommandLine.Option;

import java.util.Objects;

/** {@code --dtype}, the element type tensors are stored in; the command gives the default. */
final class StorageType {
    @Option(names = "--dtype", description = "storage type: ${COMPLETION-CANDIDATES} (default ${DEFAULT-VALUE})")
    private DType dtype;

    /** A null default would show as "(default null)" and fail only when used, so it is refused here. */
    StorageType(DType defaultType) {
        dtype = Objects.requireNonNull(defaultType, "defaultType");
    }

    /** {@return the element type chosen, or the command's default} */
    DType value() {
        return dtype;
    }
}
