package dev.aule.models.onnx;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The parts of an ONNX model a weight reader needs: the graph's nodes in file order, its initializers by name, the
 * names of its inputs and outputs, and the file it came from (for messages).
 */
public final class OnnxGraph {
    private final String source;
    private final long irVersion;
    private final long opsetVersion;
    private final List<OnnxNode> nodes;
    private final Map<String, OnnxTensor> initializers;
    private final List<String> inputs;
    private final List<String> outputs;
    private final Map<String, OnnxNode> producers = new HashMap<>();
    private final Map<String, List<OnnxNode>> consumers = new HashMap<>();

    OnnxGraph(
            String source,
            long irVersion,
            long opsetVersion,
            List<OnnxNode> nodes,
            Map<String, OnnxTensor> initializers,
            List<String> inputs,
            List<String> outputs) {
        this.source = source;
        this.irVersion = irVersion;
        this.opsetVersion = opsetVersion;
        this.nodes = List.copyOf(nodes);
        this.initializers = Map.copyOf(initializers);
        this.inputs = List.copyOf(inputs);
        this.outputs = List.copyOf(outputs);
        for (OnnxNode node : nodes) {
            for (String out : node.outputs()) {
                producers.put(out, node);
            }
            for (String in : node.inputs()) {
                consumers.computeIfAbsent(in, x -> new ArrayList<>()).add(node);
            }
        }
    }

    /** {@return where the graph was read from, as messages name it} */
    public String source() {
        return source;
    }

    /** {@return the model's ONNX IR version} */
    public long irVersion() {
        return irVersion;
    }

    /** {@return the version of the default ({@code ai.onnx}) operator set, 0 when the model names none} */
    public long opsetVersion() {
        return opsetVersion;
    }

    /** {@return the nodes, in file order} */
    public List<OnnxNode> nodes() {
        return nodes;
    }

    /** {@return the initializers by name} */
    public Map<String, OnnxTensor> initializers() {
        return initializers;
    }

    /** {@return the names of the graph's inputs that are not initializers} */
    public List<String> inputs() {
        return inputs.stream().filter(n -> !initializers.containsKey(n)).toList();
    }

    /** {@return the names of the graph's outputs} */
    public List<String> outputs() {
        return outputs;
    }

    /**
     * The node that computes a value.
     *
     * @param value a value name
     * @return its producer, empty for graph inputs, initializers and unknown names
     */
    public Optional<OnnxNode> producer(String value) {
        return Optional.ofNullable(producers.get(value));
    }

    /**
     * The nodes that read a value.
     *
     * @param value a value name
     * @return its consumers in file order (empty when none)
     */
    public List<OnnxNode> consumers(String value) {
        return consumers.getOrDefault(value, List.of());
    }

    /**
     * The constant behind a value: an initializer, or the {@code value} tensor of a {@code Constant} node.
     *
     * @param value a value name
     * @return the tensor, empty when the value is computed at run time
     */
    public Optional<OnnxTensor> constant(String value) {
        OnnxTensor init = initializers.get(value);
        if (init != null) {
            return Optional.of(init);
        }
        OnnxNode node = producers.get(value);
        if (node != null && node.opType().equals("Constant")) {
            OnnxAttribute attr = node.attributes().get("value");
            if (attr != null && attr.tensor() != null) {
                return Optional.of(attr.tensor());
            }
        }
        return Optional.empty();
    }

    /**
     * The named initializer.
     *
     * @param name its name
     * @return the tensor
     * @throws OnnxFormatException naming the file and the tensor when there is none
     */
    public OnnxTensor initializer(String name) {
        OnnxTensor t = initializers.get(name);
        if (t == null) {
            throw new OnnxFormatException(source + ": the graph has no initializer '" + name + "'");
        }
        return t;
    }
}
