package dev.aule.cli;

import picocli.CommandLine.Option;

/**
 * {@code --heads} and {@code --kv-heads}: the query and key/value head counts of a grouped-query attention shape. The
 * defaults, those of a Llama-like model, are the fields' initial values.
 */
final class Heads {
    @Option(names = "--heads", description = "query heads Hq (default ${DEFAULT-VALUE})")
    private int heads = 32;

    @Option(names = "--kv-heads", description = "key/value heads Hkv, dividing Hq (default ${DEFAULT-VALUE})")
    private int kvHeads = 8;

    /** {@return the query heads Hq} */
    int query() {
        return heads;
    }

    /** {@return the key/value heads Hkv} */
    int kv() {
        return kvHeads;
    }
}
