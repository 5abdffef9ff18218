package dev.aule.models.onnx;

/**
 * An ONNX file that cannot be read: truncated, not protobuf, not an ONNX model, or missing what the reader needs.
 * The message names the file and what is wrong with it.
 */
public final class OnnxFormatException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    /**
     * An exception with the given message.
     *
     * @param message the file and what is wrong with it
     */
    public OnnxFormatException(String message) {
        super(message);
    }
}
