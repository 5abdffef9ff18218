package dev.aule.models;

import dev.aule.Attention;
import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.cpu.workers.WorkerTeam;
import dev.aule.models.onnx.OnnxGraph;
import dev.aule.models.onnx.OnnxReader;

import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.ConcurrentLinkedQueue;

/**
 * A BERT-family encoder in pure Java: embeddings (word, position, token type) and LayerNorm, then per layer fused
 * query/key/value projections, non-causal aule attention over the batch packed as variable-length sequences (no
 * padding: {@link Attention#forwardVarlen}), the output projection with residual and LayerNorm, and the feed-forward
 * block with its residual and LayerNorm. Dense layers run on a Vector API GEMM over all cores.
 *
 * <p>Weights load from an ONNX file ({@link #load(Path)}), whose configuration is detected from the graph. An
 * encoder is immutable and safe to use from many threads at once: each call takes work buffers of its own from a
 * small pool (see {@link Workspace}), and the hidden states it returns are its own.
 */
public final class BertEncoder {
    private final BertWeights weights;
    private final BertConfig config;
    private final String source;
    private final ConcurrentLinkedQueue<Workspace> workspaces = new ConcurrentLinkedQueue<>();

    private BertEncoder(BertWeights weights, String source) {
        this.weights = weights;
        this.config = weights.config();
        this.source = source;
    }

    /**
     * Loads the encoder of an ONNX file, its configuration detected from the graph, pooling by mean.
     *
     * @param onnx the model file
     * @return the encoder
     * @throws dev.aule.models.onnx.OnnxFormatException naming the file and what is missing when it is not a
     *     readable BERT-family encoder graph
     */
    public static BertEncoder load(Path onnx) {
        return load(onnx, BertConfig.Pooling.MEAN);
    }

    /**
     * Loads the encoder of an ONNX file, its configuration detected from the graph.
     *
     * @param onnx the model file
     * @param pooling how {@link #embed} pools
     * @return the encoder
     * @throws dev.aule.models.onnx.OnnxFormatException naming the file and what is missing when it is not a
     *     readable BERT-family encoder graph
     */
    public static BertEncoder load(Path onnx, BertConfig.Pooling pooling) {
        Objects.requireNonNull(pooling, "pooling");
        OnnxGraph graph = OnnxReader.read(onnx);
        return new BertEncoder(BertOnnx.weights(graph, BertOnnx.detect(graph, pooling)), graph.source());
    }

    /**
     * Loads the encoder of an ONNX file with a given configuration; the graph's tensors must have its shapes.
     *
     * @param onnx the model file
     * @param config the encoder's shape
     * @return the encoder
     * @throws dev.aule.models.onnx.OnnxFormatException naming the file and the tensor when the graph lacks a
     *     weight or has one of another shape
     */
    public static BertEncoder load(Path onnx, BertConfig config) {
        Objects.requireNonNull(config, "config");
        OnnxGraph graph = OnnxReader.read(onnx);
        return new BertEncoder(BertOnnx.weights(graph, config), graph.source());
    }

    /**
     * Detects the configuration of the encoder in an ONNX file without keeping its weights.
     *
     * @param onnx the model file
     * @return the configuration, pooling by mean
     */
    public static BertConfig detect(Path onnx) {
        return BertOnnx.detect(OnnxReader.read(onnx), BertConfig.Pooling.MEAN);
    }

    /** {@return where the weights came from: the ONNX file's path} */
    public String source() {
        return source;
    }

    /** {@return the encoder's configuration} */
    public BertConfig config() {
        return config;
    }

    /**
     * The last hidden states of sequences of token ids, all of token type 0.
     *
     * @param tokenIds each sequence's ids (with its special tokens), 1 to {@link BertConfig#maxPositions()} ids in
     *     {@code [0, vocabSize)}
     * @return the hidden states, packed
     * @throws IllegalArgumentException naming the sequence and the rule it breaks
     */
    public HiddenStates encode(List<int[]> tokenIds) {
        return encode(tokenIds, null);
    }

    /**
     * The last hidden states of sequences of token ids with their token types.
     *
     * @param tokenIds each sequence's ids (with its special tokens), 1 to {@link BertConfig#maxPositions()} ids in
     *     {@code [0, vocabSize)}
     * @param tokenTypeIds each sequence's token types in {@code [0, typeVocabSize)}, as long as its ids; null for
     *     all 0
     * @return the hidden states, packed
     * @throws IllegalArgumentException naming the sequence and the rule it breaks
     */
    public HiddenStates encode(List<int[]> tokenIds, List<int[]> tokenTypeIds) {
        return encode(tokenIds, tokenTypeIds, null);
    }

    /**
     * For benchmarks: the speed of this encoder's dense products alone, without their bias, activation and residual
     * sums, at the shapes a pass over {@code tokens} tokens gives them. Runs the first layer's four products over
     * inputs of ones in turn, repeatedly, for about {@code seconds}, after a warm-up, on the threads a pass uses.
     *
     * @param tokens rows of each product, 4 to 65536
     * @param seconds how long to time, 0.01 to 600
     * @return GFLOP/s ({@code 2 x tokens x weights} per round over the wall-clock time)
     * @throws IllegalArgumentException if {@code tokens} or {@code seconds} is out of range
     */
    public double denseProductsGflops(int tokens, double seconds) {
        if (tokens < 4 || tokens > 65536) {
            throw new IllegalArgumentException("tokens must be in [4, 65536], got " + tokens);
        }
        if (!(seconds >= 0.01 && seconds <= 600)) {
            throw new IllegalArgumentException("seconds must be in [0.01, 600], got " + seconds);
        }
        int rows = (tokens + 3) & ~3;
        BertWeights.Layer layer = weights.layers().get(0);
        Linear[] products = {layer.qkv(), layer.attentionOutput(), layer.intermediate(), layer.output()};
        float[][] in = new float[products.length][];
        float[][] out = new float[products.length][];
        double flopsPerRound = 0;
        for (int i = 0; i < products.length; i++) {
            in[i] = new float[rows * products[i].in()];
            java.util.Arrays.fill(in[i], 1f);
            out[i] = new float[rows * products[i].out()];
            flopsPerRound += 2.0 * rows * products[i].in() * products[i].out();
        }
        Runnable round = () -> {
            for (int i = 0; i < products.length; i++) {
                Gemm.multiply(in[i], rows, products[i].weight(), out[i]);
            }
        };
        long warmEnd = System.nanoTime() + (long) (Math.min(1.0, seconds / 2) * 1e9);
        while (System.nanoTime() < warmEnd) {
            round.run();
        }
        long start = System.nanoTime();
        long end = start + (long) (seconds * 1e9);
        int rounds = 0;
        long now;
        do {
            round.run();
            rounds++;
            now = System.nanoTime();
        } while (now < end);
        return rounds * flopsPerRound / ((now - start) * 1e-9) / 1e9;
    }

    /**
     * {@link #encode(List, List)}, adding the time of each stage of the pass to {@code timings}.
     *
     * @param tokenIds each sequence's ids, as {@link #encode(List, List)} takes them
     * @param tokenTypeIds each sequence's token types, or null for all 0
     * @param timings where the stages' times add up, or null
     * @return the hidden states, packed
     * @throws IllegalArgumentException naming the sequence and the rule it breaks
     */
    public HiddenStates encode(List<int[]> tokenIds, List<int[]> tokenTypeIds, EncoderTimings timings) {
        int[] offsets = checkInputs(tokenIds, tokenTypeIds);
        int tokens = offsets[offsets.length - 1];
        float[] states = forward(tokenIds, tokenTypeIds, offsets, tokens, new Clock(timings), -1, null);
        if (timings != null) {
            timings.pass();
        }
        return new HiddenStates(config.hidden(), offsets, states);
    }

    /**
     * The queries, keys and values layer {@code layer}'s attention reads for these sequences: copies, each
     * {@code [1, heads, tokens, headDim]} F32 with the sequences packed back to back as
     * {@link HiddenStates#offsets()} are (for studying what the attention sees, such as the error a quantized
     * cache adds to it). The pass stops there.
     *
     * @param tokenIds each sequence's ids, as {@link #encode(List)} takes them
     * @param layer the layer, {@code 0 <= layer < layers}
     * @return q, k and v of that layer, in that order
     * @throws IllegalArgumentException naming the sequence and the rule it breaks, or {@code layer}
     */
    public Tensor[] attentionInputs(List<int[]> tokenIds, int layer) {
        int layers = weights.layers().size();
        if (layer < 0 || layer >= layers) {
            throw new IllegalArgumentException("layer: " + layer + " must be in [0, " + layers + ")");
        }
        int[] offsets = checkInputs(tokenIds, null);
        int tokens = offsets[offsets.length - 1];
        float[][] captured = new float[1][];
        forward(tokenIds, null, offsets, tokens, new Clock(null), layer, captured);
        int h = config.hidden();
        int d = config.headDim();
        Tensor[] qkv = new Tensor[3];
        for (int part = 0; part < 3; part++) {
            Tensor t = Tensor.allocate(DType.F32, 1, config.heads(), tokens, d);
            float[] row = new float[d];
            for (int head = 0; head < config.heads(); head++) {
                for (int j = 0; j < tokens; j++) {
                    System.arraycopy(captured[0], j * 3 * h + part * h + head * d, row, 0, d);
                    t.writeRow(0, head, j, row, 0);
                }
            }
            qkv[part] = t;
        }
        return qkv;
    }

    /** Adds the time since the last mark to a stage, when there is a timings object to add to. */
    private static final class Clock {
        private final EncoderTimings timings;
        private long last;

        Clock(EncoderTimings timings) {
            this.timings = timings;
            this.last = timings == null ? 0 : System.nanoTime();
        }

        void mark(EncoderTimings.Stage stage) {
            if (timings != null) {
                long now = System.nanoTime();
                timings.add(stage, now - last);
                last = now;
            }
        }
    }

    /**
     * Sentence embeddings: each sequence's hidden states pooled ({@link BertConfig#pooling()}) and scaled to unit
     * L2 norm.
     *
     * @param tokenIds each sequence's ids, as {@link #encode(List)} takes them
     * @return one embedding of {@code hidden} values per sequence
     * @throws IllegalArgumentException naming the sequence and the rule it breaks
     */
    public float[][] embed(List<int[]> tokenIds) {
        return pool(encode(tokenIds), config.pooling());
    }

    /**
     * Pools hidden states into unit-length embeddings, summing in double.
     *
     * @param states the hidden states of a batch
     * @param pooling mean over each sequence's tokens, or its first token
     * @return one embedding per sequence
     */
    public static float[][] pool(HiddenStates states, BertConfig.Pooling pooling) {
        int h = states.hidden();
        float[][] out = new float[states.sequences()][h];
        for (int s = 0; s < states.sequences(); s++) {
            int from = states.offsets()[s];
            int count = pooling == BertConfig.Pooling.CLS ? 1 : states.length(s);
            double[] sum = new double[h];
            for (int t = from; t < from + count; t++) {
                for (int i = 0; i < h; i++) {
                    sum[i] += states.values()[t * h + i];
                }
            }
            double norm = 0;
            for (int i = 0; i < h; i++) {
                sum[i] /= count;
                norm += sum[i] * sum[i];
            }
            double inv = norm > 0 ? 1 / Math.sqrt(norm) : 0;
            for (int i = 0; i < h; i++) {
                out[s][i] = (float) (sum[i] * inv);
            }
        }
        return out;
    }

    private int[] checkInputs(List<int[]> tokenIds, List<int[]> tokenTypeIds) {
        Objects.requireNonNull(tokenIds, "tokenIds");
        if (tokenIds.isEmpty()) {
            throw new IllegalArgumentException("tokenIds: no sequences, need at least one");
        }
        if (tokenTypeIds != null && tokenTypeIds.size() != tokenIds.size()) {
            throw new IllegalArgumentException(
                    "tokenTypeIds: " + tokenTypeIds.size() + " sequences where tokenIds has " + tokenIds.size());
        }
        int[] offsets = new int[tokenIds.size() + 1];
        long total = 0;
        for (int s = 0; s < tokenIds.size(); s++) {
            int[] ids = tokenIds.get(s);
            if (ids == null) {
                throw new IllegalArgumentException("tokenIds[" + s + "]: null");
            }
            if (ids.length == 0) {
                throw new IllegalArgumentException(
                        "tokenIds[" + s + "]: empty, a sequence needs at least one token (its [CLS] and [SEP])");
            }
            if (ids.length > config.maxPositions()) {
                throw new IllegalArgumentException("tokenIds[" + s + "]: " + ids.length + " tokens, more than the "
                        + config.maxPositions() + " positions the model has: truncate it");
            }
            for (int t = 0; t < ids.length; t++) {
                if (ids[t] < 0 || ids[t] >= config.vocabSize()) {
                    throw new IllegalArgumentException("tokenIds[" + s + "][" + t + "]: id " + ids[t]
                            + " is outside the vocabulary [0, " + config.vocabSize() + ")");
                }
            }
            if (tokenTypeIds != null) {
                int[] types = tokenTypeIds.get(s);
                if (types == null || types.length != ids.length) {
                    throw new IllegalArgumentException("tokenTypeIds[" + s + "]: "
                            + (types == null ? "null" : types.length + " types") + " for " + ids.length + " tokens");
                }
                for (int t = 0; t < types.length; t++) {
                    if (types[t] < 0 || types[t] >= config.typeVocabSize()) {
                        throw new IllegalArgumentException("tokenTypeIds[" + s + "][" + t + "]: type " + types[t]
                                + " is outside [0, " + config.typeVocabSize() + ")");
                    }
                }
            }
            total += ids.length;
            long widest = Math.max(3L * config.hidden(), config.intermediate());
            if ((total + 3) * widest > Integer.MAX_VALUE - 8) {
                throw new IllegalArgumentException("tokenIds: more than " + (Integer.MAX_VALUE - 8) / widest
                        + " tokens in one call: split the batch");
            }
            offsets[s + 1] = (int) total;
        }
        return offsets;
    }

    /*
     * Buffers are row-major [rows][width] with rows = tokens rounded up to a multiple of 4 (the GEMM's row block);
     * the padding rows are never read back and LayerNorm skips them (the dense layers' epilogues compute them from
     * finite values, so they stay finite).
     */
    /** The pass; with {@code captureLayer >= 0} it stops after that layer's q, k, v projection, kept in {@code captured[0]}. */
    private float[] forward(
            List<int[]> tokenIds,
            List<int[]> tokenTypeIds,
            int[] offsets,
            int tokens,
            Clock clock,
            int captureLayer,
            float[][] captured) {
        int h = config.hidden();
        int rows = (tokens + 3) & ~3;
        float[] x = new float[rows * h];
        embeddings(tokenIds, tokenTypeIds, offsets, x);
        layerNorm(x, tokens, weights.embeddingNormWeight(), weights.embeddingNormBias());
        Workspace work = takeWorkspace(rows);
        float[] qkv = work.qkv;
        float[] context = work.context;
        float[] projected = work.projected;
        float[] inner = work.inner;
        // Attention writes the tokens' rows of context; the padding rows the next product reads start at zero.
        java.util.Arrays.fill(context, tokens * h, rows * h, 0f);
        clock.mark(EncoderTimings.Stage.EMBEDDINGS);
        int index = 0;
        for (BertWeights.Layer layer : weights.layers()) {
            layer.qkv().apply(x, rows, qkv);
            clock.mark(EncoderTimings.Stage.DENSE);
            if (index++ == captureLayer) {
                captured[0] = qkv; // handed to the caller: this workspace does not go back to the pool
                return null;
            }
            attention(qkv, tokens, offsets, context);
            clock.mark(EncoderTimings.Stage.ATTENTION);
            layer.attentionOutput().applyResidual(context, rows, projected, x);
            clock.mark(EncoderTimings.Stage.DENSE);
            layerNorm(x, tokens, layer.attentionNormWeight(), layer.attentionNormBias());
            clock.mark(EncoderTimings.Stage.LAYER_NORMS);
            layer.intermediate().applyActivated(x, rows, inner, config.activation());
            layer.output().applyResidual(inner, rows, projected, x);
            clock.mark(EncoderTimings.Stage.DENSE);
            layerNorm(x, tokens, layer.outputNormWeight(), layer.outputNormBias());
            clock.mark(EncoderTimings.Stage.LAYER_NORMS);
        }
        giveBack(work);
        return tokens == rows ? x : java.util.Arrays.copyOf(x, tokens * h);
    }

    /**
     * A forward pass's work buffers (the fused q/k/v projection, attention's context, a dense layer's output and the
     * feed-forward block's inner activations), each row-major with room for {@link #rows} rows. Kept between passes
     * because allocating them meant zeroing 15 KiB per token (7.9 MiB at 512 tokens) every pass; every row a pass
     * reads it has written first, except context's padding rows, which it zeroes.
     */
    private static final class Workspace {
        /** Most floats the pool keeps over all its workspaces (64 MiB); larger passes allocate their own. */
        static final long KEPT_FLOATS = 16L << 20;

        final int rows;
        final float[] qkv;
        final float[] context;
        final float[] projected;
        final float[] inner;

        Workspace(int rows, int hidden, int intermediate) {
            this.rows = rows;
            this.qkv = new float[rows * 3 * hidden];
            this.context = new float[rows * hidden];
            this.projected = new float[rows * hidden];
            this.inner = new float[rows * intermediate];
        }

        long floats() {
            return (long) qkv.length + context.length + projected.length + inner.length;
        }
    }

    /** A workspace of at least {@code rows} rows: a kept one when one is large enough, else a new one. */
    private Workspace takeWorkspace(int rows) {
        for (Workspace w; (w = workspaces.poll()) != null; ) {
            if (w.rows >= rows) {
                return w;
            }
        }
        return new Workspace(rows, config.hidden(), config.intermediate());
    }

    /** Keeps a workspace for later passes while the pool stays within {@link Workspace#KEPT_FLOATS}. */
    private void giveBack(Workspace w) {
        long kept = w.floats();
        for (Workspace other : workspaces) {
            kept += other.floats();
        }
        if (kept <= Workspace.KEPT_FLOATS) {
            workspaces.offer(w);
        }
    }

    private void embeddings(List<int[]> tokenIds, List<int[]> tokenTypeIds, int[] offsets, float[] x) {
        int h = config.hidden();
        float[] word = weights.wordEmbeddings();
        float[] position = weights.positionEmbeddings();
        float[] type = weights.typeEmbeddings();
        for (int s = 0; s < tokenIds.size(); s++) {
            int[] ids = tokenIds.get(s);
            int[] types = tokenTypeIds == null ? null : tokenTypeIds.get(s);
            for (int t = 0; t < ids.length; t++) {
                int o = (offsets[s] + t) * h;
                int w = ids[t] * h;
                int p = t * h;
                int ty = (types == null ? 0 : types[t]) * h;
                for (int i = 0; i < h; i++) {
                    // The ONNX graph's order: (word + type) + position.
                    x[o + i] = (word[w + i] + type[ty + i]) + position[p + i];
                }
            }
        }
    }

    /** Attention of the packed query, key and value columns of {@code qkv} into {@code context [tokens][hidden]}. */
    private void attention(float[] qkv, int tokens, int[] offsets, float[] context) {
        int h = config.hidden();
        int heads = config.heads();
        int d = config.headDim();
        MemorySegment all = MemorySegment.ofArray(qkv);
        long[] shape = {1, heads, tokens, d};
        long[] strides = {(long) tokens * 3 * h, d, 3L * h, 1};
        Tensor q = Tensor.of(all, DType.F32, shape, strides);
        Tensor k = Tensor.of(all.asSlice((long) h * Float.BYTES), DType.F32, shape, strides);
        Tensor v = Tensor.of(all.asSlice(2L * h * Float.BYTES), DType.F32, shape, strides);
        // The output straight into context [tokens][hidden], head after head within each token's row.
        Tensor out =
                Tensor.of(MemorySegment.ofArray(context), DType.F32, shape, new long[] {(long) tokens * h, d, h, 1});
        Attention.forwardVarlenInto(q, k, v, offsets, offsets, out, null, AttentionOptions.defaults());
    }

    private void layerNorm(float[] x, int tokens, float[] gamma, float[] beta) {
        int h = config.hidden();
        double eps = config.layerNormEps();
        parallelRows(tokens, (from, to) -> {
            for (int r = from; r < to; r++) {
                Activations.layerNorm(x, r, h, gamma, beta, eps);
            }
        });
    }

    /** Splits {@code [0, rows)} into blocks of 16 rows over the library's team of CPU threads. */
    private static void parallelRows(int rows, RowRange body) {
        int blocks = (rows + 15) / 16;
        WorkerTeam.shared().forEach(blocks, Integer.MAX_VALUE, b -> body.run(b * 16, Math.min(rows, b * 16 + 16)));
    }

    @FunctionalInterface
    private interface RowRange {
        void run(int from, int to);
    }

    @Override
    public String toString() {
        return "BertEncoder" + config;
    }
}
