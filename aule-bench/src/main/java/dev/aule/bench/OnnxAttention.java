package dev.aule.bench;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.Map;

/**
 * The ONNX Runtime peer: its CPU {@code com.microsoft.MultiHeadAttention} contrib op (MLAS's
 * flash kernel when not causal; {@code unidirectional = 1} for causal) in a one-node model built
 * in memory, on as many intra-op threads as the cpu backend uses, which do not spin when idle. Inputs and output are
 * {@code [1, S, H*D]} (BSHD) direct buffers created once, and the output is pinned, so a call
 * times the attention kernel and nothing else.
 */
final class OnnxAttention implements AutoCloseable {
    private final int heads;
    private final int seq;
    private final int headDim;
    private final OrtSession session;
    private final OnnxTensor query;
    private final OnnxTensor key;
    private final OnnxTensor value;
    private final OnnxTensor output;
    private final FloatBuffer outputBuffer;

    /** A session for one shape; {@code q}, {@code k}, {@code v} are BHSD arrays {@code [1][heads][seq][headDim]}. */
    OnnxAttention(float[] q, float[] k, float[] v, int heads, int seq, int headDim, boolean causal, int threads) {
        this.heads = heads;
        this.seq = seq;
        this.headDim = headDim;
        long[] shape = {1, seq, (long) heads * headDim};
        byte[] model = new OnnxModel("MultiHeadAttention", "com.microsoft")
                .input("query", shape)
                .input("key", shape)
                .input("value", shape)
                .output("out", shape)
                .attribute("num_heads", heads)
                .attribute("scale", (float) (1 / Math.sqrt(headDim)))
                .attribute("unidirectional", causal ? 1 : 0)
                .toBytes();
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        try (OrtSession.SessionOptions options = new OrtSession.SessionOptions()) {
            options.setIntraOpNumThreads(threads);
            options.setInterOpNumThreads(1);
            // No spinning between calls: idle ORT workers would otherwise steal the cores from
            // whatever is timed next in the same JVM (aule bench interleaves contenders).
            options.addConfigEntry("session.intra_op.allow_spinning", "0");
            session = env.createSession(model, options);
            query = OnnxTensor.createTensor(env, bshd(q), shape);
            key = OnnxTensor.createTensor(env, bshd(k), shape);
            value = OnnxTensor.createTensor(env, bshd(v), shape);
            outputBuffer = direct(heads * seq * headDim);
            output = OnnxTensor.createTensor(env, outputBuffer, shape);
        } catch (OrtException e) {
            throw new IllegalStateException("ONNX Runtime could not build the attention session: " + e.getMessage(), e);
        }
    }

    /** One attention call into the pinned output. */
    void forward() {
        try {
            session.run(Map.of("query", query, "key", key, "value", value), Map.of("out", output))
                    .close();
        } catch (OrtException e) {
            throw new IllegalStateException("ONNX Runtime attention failed: " + e.getMessage(), e);
        }
    }

    /** The last output as a BHSD array, for checking against the cpu backend. */
    float[] outputBhsd() {
        float[] out = new float[heads * seq * headDim];
        for (int s = 0; s < seq; s++) {
            for (int h = 0; h < heads; h++) {
                outputBuffer.get((s * heads + h) * headDim, out, (h * seq + s) * headDim, headDim);
            }
        }
        return out;
    }

    @Override
    public void close() {
        try {
            query.close();
            key.close();
            value.close();
            output.close();
            session.close();
        } catch (OrtException e) {
            throw new IllegalStateException("ONNX Runtime could not close the session: " + e.getMessage(), e);
        }
    }

    private FloatBuffer bshd(float[] bhsd) {
        FloatBuffer buffer = direct(bhsd.length);
        for (int s = 0; s < seq; s++) {
            for (int h = 0; h < heads; h++) {
                buffer.put((s * heads + h) * headDim, bhsd, (h * seq + s) * headDim, headDim);
            }
        }
        return buffer;
    }

    private static FloatBuffer direct(int floats) {
        return ByteBuffer.allocateDirect(floats * Float.BYTES)
                .order(ByteOrder.nativeOrder())
                .asFloatBuffer();
    }
}
