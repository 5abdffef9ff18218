package dev.aule.models.onnx;

import java.util.List;
import java.util.Map;

/**
 * A node of an ONNX graph.
 *
 * @param name the node's name ({@code ""} when unnamed)
 * @param opType the operator, e.g. {@code MatMul}
 * @param inputs the names of its inputs, in order ({@code ""} for an omitted optional input)
 * @param outputs the names of its outputs, in order
 * @param attributes its attributes by name
 */
public record OnnxNode(
        String name, String opType, List<String> inputs, List<String> outputs, Map<String, OnnxAttribute> attributes) {
    /** Copies the lists and the map. */
    public OnnxNode {
        inputs = List.copyOf(inputs);
        outputs = List.copyOf(outputs);
        attributes = Map.copyOf(attributes);
    }
}
