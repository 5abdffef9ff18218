package dev.aule.cli;

import dev.aule.Backends;
import dev.aule.spi.AttentionBackend;

/**
 * The backend a command runs on and what decided it.
 *
 * @param backend the backend calls through {@code Attention} use
 * @param reason what chose it, for people
 */
record Selection(AttentionBackend backend, String reason) {

    /** @throws IllegalArgumentException or {@link dev.aule.BackendUnavailableException} when a forced name is wrong */
    static Selection current() {
        return new Selection(Backends.selected(), Backends.selectionReason());
    }

    /** The backend the user named, if any, else the current selection. */
    static Selection of(AttentionBackend named) {
        return named != null ? new Selection(named, "chosen with --backend") : current();
    }
}
