package dev.aule.models;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;

/** ONNX Runtime on the same ONNX file: the last hidden state of one unpadded sequence. */
final class OrtOracle implements AutoCloseable {
    private final OrtEnvironment env = OrtEnvironment.getEnvironment();
    private final OrtSession session;

    OrtOracle(Path onnx) throws OrtException {
        session = env.createSession(onnx.toString(), new OrtSession.SessionOptions());
    }

    /** {@code [tokens][hidden]} row-major. */
    float[] lastHiddenState(int[] ids) throws OrtException {
        long[][] input = {Arrays.stream(ids).asLongStream().toArray()};
        long[][] mask = new long[1][ids.length];
        Arrays.fill(mask[0], 1);
        long[][] types = new long[1][ids.length];
        try (OnnxTensor i = OnnxTensor.createTensor(env, input);
                OnnxTensor m = OnnxTensor.createTensor(env, mask);
                OnnxTensor t = OnnxTensor.createTensor(env, types);
                OrtSession.Result r = session.run(Map.of("input_ids", i, "attention_mask", m, "token_type_ids", t))) {
            float[][][] out = (float[][][]) r.get(0).getValue();
            int h = out[0][0].length;
            float[] flat = new float[ids.length * h];
            for (int s = 0; s < ids.length; s++) {
                System.arraycopy(out[0][s], 0, flat, s * h, h);
            }
            return flat;
        }
    }

    @Override
    public void close() throws OrtException {
        session.close();
    }
}
