package dev.aule.models;

import dev.aule.models.onnx.OnnxFormatException;
import dev.aule.models.onnx.OnnxGraph;
import dev.aule.models.onnx.OnnxNode;
import dev.aule.models.onnx.OnnxTensor;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * Takes a BERT encoder's configuration and weights from the ONNX graph of a Hugging Face export (the names
 * {@code [bert.]embeddings.*} and {@code [bert.]encoder.layer.N.*}). Embedding tables, biases and LayerNorm weights
 * are found by name; dense weights, which exporters name after their MatMul ({@code onnx::MatMul_836}), through the
 * graph: the MatMul whose output the layer's named bias is added to. The configuration comes from the tensors'
 * shapes and from the graph's constants (heads from the Reshape that splits the query into heads, the epsilon from
 * the Add under LayerNorm's Sqrt, the activation from the ops after the intermediate layer).
 */
final class BertOnnx {
    private final OnnxGraph graph;
    private final String prefix;

    private BertOnnx(OnnxGraph graph) {
        this.graph = graph;
        this.prefix = graph.initializers().keySet().stream()
                .filter(n -> n.endsWith("embeddings.word_embeddings.weight"))
                .map(n -> n.substring(0, n.length() - "embeddings.word_embeddings.weight".length()))
                .findFirst()
                .orElseThrow(() -> fail("no initializer 'embeddings.word_embeddings.weight': not a BERT-family"
                        + " encoder graph (exported from Hugging Face transformers)"));
    }

    /** The configuration the graph describes, with {@code pooling}. */
    static BertConfig detect(OnnxGraph graph, BertConfig.Pooling pooling) {
        return new BertOnnx(graph).detect(pooling);
    }

    /** The weights, checked against {@code config}. */
    static BertWeights weights(OnnxGraph graph, BertConfig config) {
        return new BertOnnx(graph).weights(config);
    }

    private BertConfig detect(BertConfig.Pooling pooling) {
        long[] word = dims("embeddings.word_embeddings.weight", 2);
        long[] position = dims("embeddings.position_embeddings.weight", 2);
        long[] type = dims("embeddings.token_type_embeddings.weight", 2);
        int layers = 0;
        while (graph.initializers().containsKey(layerName(layers, "attention.self.query.bias"))) {
            layers++;
        }
        if (layers == 0) {
            throw fail("no initializer '" + layerName(0, "attention.self.query.bias") + "': the graph has no encoder"
                    + " layers this reader recognises");
        }
        int hidden = (int) word[1];
        int intermediate = (int) dims(layerName(0, "intermediate.dense.bias"), 1)[0];
        int heads = detectHeads(hidden);
        return new BertConfig(
                layers,
                hidden,
                heads,
                intermediate,
                (int) word[0],
                (int) position[0],
                (int) type[0],
                detectEps(),
                detectActivation(),
                pooling);
    }

    private BertWeights weights(BertConfig c) {
        int h = c.hidden();
        float[] word = floats("embeddings.word_embeddings.weight", c.vocabSize(), h);
        float[] position = floats("embeddings.position_embeddings.weight", c.maxPositions(), h);
        float[] type = floats("embeddings.token_type_embeddings.weight", c.typeVocabSize(), h);
        float[] normW = floats("embeddings.LayerNorm.weight", h);
        float[] normB = floats("embeddings.LayerNorm.bias", h);
        PanelArena arena = PanelArena.forShapes(denseShapes(c));
        List<BertWeights.Layer> layers = new ArrayList<>();
        for (int i = 0; i < c.layers(); i++) {
            float[] q = denseWeight(i, "attention.self.query", h, h);
            float[] k = denseWeight(i, "attention.self.key", h, h);
            float[] v = denseWeight(i, "attention.self.value", h, h);
            float[] qkv = new float[h * 3 * h];
            for (int r = 0; r < h; r++) {
                System.arraycopy(q, r * h, qkv, r * 3 * h, h);
                System.arraycopy(k, r * h, qkv, r * 3 * h + h, h);
                System.arraycopy(v, r * h, qkv, r * 3 * h + 2 * h, h);
            }
            float[] qkvBias = new float[3 * h];
            System.arraycopy(floats(layerName(i, "attention.self.query.bias"), h), 0, qkvBias, 0, h);
            System.arraycopy(floats(layerName(i, "attention.self.key.bias"), h), 0, qkvBias, h, h);
            System.arraycopy(floats(layerName(i, "attention.self.value.bias"), h), 0, qkvBias, 2 * h, h);
            layers.add(new BertWeights.Layer(
                    new Linear(arena.pack(qkv, h, 3 * h), qkvBias),
                    dense(arena, i, "attention.output.dense", h, h),
                    floats(layerName(i, "attention.output.LayerNorm.weight"), h),
                    floats(layerName(i, "attention.output.LayerNorm.bias"), h),
                    dense(arena, i, "intermediate.dense", h, c.intermediate()),
                    dense(arena, i, "output.dense", c.intermediate(), h),
                    floats(layerName(i, "output.LayerNorm.weight"), h),
                    floats(layerName(i, "output.LayerNorm.bias"), h)));
        }
        if (graph.initializers().containsKey(layerName(c.layers(), "attention.self.query.bias"))) {
            throw fail("the graph has more than the " + c.layers() + " layers the configuration gives");
        }
        return new BertWeights(c, word, position, type, normW, normB, List.copyOf(layers));
    }

    /** Every dense layer's weight shape, in the order {@link #weights(BertConfig)} packs them. */
    private static List<PanelArena.Shape> denseShapes(BertConfig c) {
        int h = c.hidden();
        List<PanelArena.Shape> shapes = new ArrayList<>();
        for (int i = 0; i < c.layers(); i++) {
            shapes.add(new PanelArena.Shape(h, 3 * h));
            shapes.add(new PanelArena.Shape(h, h));
            shapes.add(new PanelArena.Shape(h, c.intermediate()));
            shapes.add(new PanelArena.Shape(c.intermediate(), h));
        }
        return shapes;
    }

    private Linear dense(PanelArena arena, int layer, String name, int in, int out) {
        return new Linear(
                arena.pack(denseWeight(layer, name, in, out), in, out), floats(layerName(layer, name + ".bias"), out));
    }

    /**
     * The {@code [in][out]} weight of a dense layer: a named {@code .weight} initializer when the graph has one
     * (then stored {@code [out][in]}, PyTorch's layout), else the constant operand of the MatMul whose output the
     * named bias is added to.
     */
    private float[] denseWeight(int layer, String name, int in, int out) {
        String biasName = layerName(layer, name + ".bias");
        for (OnnxNode add : graph.consumers(biasName)) {
            if (!add.opType().equals("Add") || add.inputs().size() != 2) {
                continue;
            }
            String other = add.inputs().get(0).equals(biasName)
                    ? add.inputs().get(1)
                    : add.inputs().get(0);
            Optional<OnnxNode> matMul = graph.producer(other);
            if (matMul.isPresent() && matMul.get().opType().equals("MatMul")) {
                String weightName = matMul.get().inputs().get(1);
                OnnxTensor w = graph.constant(weightName)
                        .orElseThrow(() -> fail("the MatMul of '" + layerName(layer, name) + "' multiplies by '"
                                + weightName + "', which is not a constant"));
                return checked(w, "the weight of '" + layerName(layer, name) + "'", in, out);
            }
        }
        String weightName = layerName(layer, name + ".weight");
        OnnxTensor named = graph.initializers().get(weightName);
        if (named != null) {
            float[] t = checked(named, "the weight of '" + layerName(layer, name) + "'", out, in);
            float[] w = new float[in * out];
            for (int o = 0; o < out; o++) {
                for (int i = 0; i < in; i++) {
                    w[i * out + o] = t[o * in + i];
                }
            }
            return w;
        }
        throw fail("no weight for '" + layerName(layer, name) + "': neither a MatMul whose output '" + biasName
                + "' is added to, nor an initializer '" + weightName + "'");
    }

    private int detectHeads(int hidden) {
        // The Reshape of the query projection to [batch, seq, heads, headDim]: its shape is a constant, or the
        // Concat of the run-time batch and sequence sizes with the constants heads and headDim.
        String queryBias = layerName(0, "attention.self.query.bias");
        for (OnnxNode add : graph.consumers(queryBias)) {
            for (OnnxNode reshape : graph.consumers(add.outputs().getFirst())) {
                if (!reshape.opType().equals("Reshape") || reshape.inputs().size() < 2) {
                    continue;
                }
                long[] shape = shapeConstants(reshape.inputs().get(1));
                if (shape != null
                        && shape.length == 4
                        && shape[2] > 0
                        && shape[3] > 0
                        && shape[2] * shape[3] == hidden) {
                    return (int) shape[2];
                }
            }
        }
        throw fail("cannot tell the number of attention heads: no Reshape of the query into [batch, seq, heads, "
                + "headDim] with constant heads and headDim (give a BertConfig)");
    }

    /** The values of a shape operand: a constant, or a Concat of one-element parts (-1 for a computed part). */
    private long[] shapeConstants(String value) {
        Optional<OnnxTensor> constant = graph.constant(value);
        if (constant.isPresent()) {
            return constant.get().longs();
        }
        Optional<OnnxNode> concat = graph.producer(value);
        if (concat.isEmpty() || !concat.get().opType().equals("Concat")) {
            return null;
        }
        List<String> parts = concat.get().inputs();
        long[] shape = new long[parts.size()];
        for (int i = 0; i < shape.length; i++) {
            Optional<OnnxTensor> part = graph.constant(parts.get(i));
            long[] v = part.isPresent() ? part.get().longs() : null;
            shape[i] = v != null && v.length == 1 ? v[0] : -1;
        }
        return shape;
    }

    private double detectEps() {
        // LayerNorm spelled out (opsets before 17): (x - mean) / Sqrt(ReduceMean(d^2) + eps) * weight + bias. The
        // weight's Mul takes the Div whose divisor is that Sqrt, of the Add with the eps constant.
        String weight = prefix + "embeddings.LayerNorm.weight";
        for (OnnxNode node : graph.consumers(weight)) {
            if (node.opType().equals("LayerNormalization")) {
                var eps = node.attributes().get("epsilon");
                return eps == null ? 1e-5 : eps.f();
            }
            if (!node.opType().equals("Mul")) {
                continue;
            }
            for (String in : node.inputs()) {
                Optional<OnnxNode> div =
                        graph.producer(in).filter(n -> n.opType().equals("Div"));
                Optional<OnnxNode> sqrt = div.flatMap(
                                d -> graph.producer(d.inputs().get(1)))
                        .filter(n -> n.opType().equals("Sqrt"));
                Optional<OnnxNode> add = sqrt.flatMap(
                                s -> graph.producer(s.inputs().getFirst()))
                        .filter(n -> n.opType().equals("Add"));
                if (add.isPresent()) {
                    for (String operand : add.get().inputs()) {
                        Optional<OnnxTensor> eps = graph.constant(operand);
                        if (eps.isPresent() && eps.get().elementCount() == 1) {
                            return eps.get().floats()[0];
                        }
                    }
                }
            }
        }
        throw fail("cannot find the LayerNorm epsilon: '" + weight + "' is not multiplied into a LayerNorm this"
                + " reader recognises (give a BertConfig)");
    }

    private BertConfig.Activation detectActivation() {
        // The ops within a few steps after the first intermediate layer's bias Add, before the output dense layer.
        String bias = layerName(0, "intermediate.dense.bias");
        ArrayDeque<String> frontier = new ArrayDeque<>();
        Set<String> seen = new HashSet<>();
        for (OnnxNode add : graph.consumers(bias)) {
            frontier.addAll(add.outputs());
        }
        for (int depth = 0; depth < 6 && !frontier.isEmpty(); depth++) {
            ArrayDeque<String> next = new ArrayDeque<>();
            for (String value : frontier) {
                for (OnnxNode node : graph.consumers(value)) {
                    switch (node.opType()) {
                        case "Erf" -> {
                            return BertConfig.Activation.GELU_ERF;
                        }
                        case "Tanh" -> {
                            return BertConfig.Activation.GELU_TANH;
                        }
                        case "Relu" -> {
                            return BertConfig.Activation.RELU;
                        }
                        case "MatMul" -> {
                            // past the activation: the output dense layer
                        }
                        default -> {
                            if (seen.add(node.name() + node.outputs())) {
                                next.addAll(node.outputs());
                            }
                        }
                    }
                }
            }
            frontier = next;
        }
        throw fail("cannot tell the feed-forward activation: no Erf, Tanh or Relu after '" + bias
                + "' (give a BertConfig)");
    }

    private String layerName(int layer, String name) {
        return prefix + "encoder.layer." + layer + "." + name;
    }

    private long[] dims(String name, int rank) {
        OnnxTensor t = graph.initializer(prefix + name);
        long[] dims = t.dims();
        if (dims.length != rank) {
            throw fail("tensor '" + t.name() + "' has dims " + Arrays.toString(dims) + ", not rank " + rank);
        }
        for (long d : dims) {
            if (d < 1 || d > Integer.MAX_VALUE) {
                throw fail("tensor '" + t.name() + "' has dims " + Arrays.toString(dims));
            }
        }
        return dims;
    }

    private float[] floats(String name, int... shape) {
        String full = name.startsWith(prefix + "encoder.") ? name : prefix + name;
        return checked(graph.initializer(full), null, shape);
    }

    private float[] checked(OnnxTensor t, String role, int... shape) {
        long[] dims = t.dims();
        long[] want = Arrays.stream(shape).asLongStream().toArray();
        if (!Arrays.equals(dims, want)) {
            throw fail("tensor '" + t.name() + "'" + (role == null ? "" : " (" + role + ")") + " has dims "
                    + Arrays.toString(dims) + " where the configuration needs " + Arrays.toString(want));
        }
        return t.floats();
    }

    private OnnxFormatException fail(String what) {
        return new OnnxFormatException(graph.source() + ": " + what);
    }
}
