package dev.aule.cli;

import picocli.CommandLine.Option;

/** {@code --head-dim}, the size D of one head's query, key and value vectors; the default is the field's initial value. */
final class HeadDim {
    @Option(names = "--head-dim", description = "head dim D (default ${DEFAULT-VALUE})")
    private int headDim = 128;

    /** {@return the head dim D} */
    int value() {
        return headDim;
    }
}
