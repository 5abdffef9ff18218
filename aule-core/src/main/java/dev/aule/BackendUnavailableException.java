package dev.aule;

/** Thrown when a backend that was asked for by name cannot run here. */
public final class BackendUnavailableException extends IllegalStateException {
    private static final long serialVersionUID = 1L;

    /**
     * An exception that names the backend and why it cannot run.
     *
     * @param message the backend and the reason
     */
    public BackendUnavailableException(String message) {
        super(message);
    }
}
