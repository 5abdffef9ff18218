package dev.aule.models.onnx;

/** Hand-made ONNX models for tests outside this package. */
public final class OnnxModels {
    private OnnxModels() {}

    /** {@return a valid ONNX model with one MatMul: not a BERT encoder} */
    public static byte[] matMulModel() {
        return OnnxReaderTest.model(2 * 1 + 1);
    }
}
