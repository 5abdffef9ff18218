package dev.aule.models;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * Sentence embeddings of text: the model's own {@code tokenizer.json} (Hugging Face tokenizers, whose jar carries
 * its native library) and a {@link BertEncoder}. The tokenizer file's own truncation and padding (all-MiniLM's pads
 * and truncates to 128) are overridden: texts are not padded (the encoder packs them), and a text longer than
 * {@link #maxTokens()} tokens is truncated to that many by {@link #embed}, which its {@link Embedding#truncated()}
 * says, or embedded in parts whose embeddings are averaged by {@link #embedInParts}.
 *
 * <p>Safe to use from many threads. {@link #close()} frees the tokenizer's native memory.
 */
public final class SentenceEmbedder implements AutoCloseable {
    static {
        // DJL reports usage from some environments unless told not to; an embedding library should not.
        if (System.getProperty("OPT_OUT_TRACKING") == null) {
            System.setProperty("OPT_OUT_TRACKING", "true");
        }
    }

    private final BertEncoder encoder;
    private final HuggingFaceTokenizer tokenizer;
    private final int maxTokens;

    private SentenceEmbedder(BertEncoder encoder, HuggingFaceTokenizer tokenizer, int maxTokens) {
        this.encoder = encoder;
        this.tokenizer = tokenizer;
        this.maxTokens = maxTokens;
    }

    /**
     * One text's embedding.
     *
     * @param vector the pooled, unit-length embedding
     * @param tokens the tokens the encoder saw, with the special ones
     * @param truncated whether the text had more tokens than {@link #maxTokens()}, the rest dropped
     */
    public record Embedding(float[] vector, int tokens, boolean truncated) {}

    /**
     * An embedder of the encoder in {@code onnx} with the tokenizer of {@code tokenizerJson}, truncating at the
     * model's {@link BertConfig#maxPositions()}.
     *
     * @param onnx the model file
     * @param tokenizerJson the model's {@code tokenizer.json}
     * @return the embedder
     */
    public static SentenceEmbedder load(Path onnx, Path tokenizerJson) {
        BertEncoder encoder = BertEncoder.load(onnx);
        return of(encoder, tokenizerJson, encoder.config().maxPositions());
    }

    /**
     * An embedder of one of the models this module knows, loaded from its LangChain4j jar ({@link ModelFiles#copy})
     * with the model's pooling, truncating at its positions.
     *
     * @param model the model
     * @return the embedder
     * @throws IllegalArgumentException when the model's jar is neither on the class path nor in the local Maven
     *     repository
     */
    public static SentenceEmbedder load(SentenceModel model) {
        try (ModelFiles files = ModelFiles.copy(model)) {
            BertEncoder encoder = BertEncoder.load(files.onnx(), model.pooling());
            return of(encoder, files.tokenizer(), encoder.config().maxPositions());
        }
    }

    /**
     * An embedder of a loaded encoder.
     *
     * @param encoder the encoder
     * @param tokenizerJson the model's {@code tokenizer.json}
     * @param maxTokens the most tokens of a text (special ones included), 2 to the model's positions
     * @return the embedder
     * @throws IllegalArgumentException when maxTokens is out of range
     * @throws UncheckedIOException when the tokenizer file cannot be read
     */
    public static SentenceEmbedder of(BertEncoder encoder, Path tokenizerJson, int maxTokens) {
        Objects.requireNonNull(encoder, "encoder");
        Objects.requireNonNull(tokenizerJson, "tokenizerJson");
        if (maxTokens < 2 || maxTokens > encoder.config().maxPositions()) {
            throw new IllegalArgumentException("maxTokens: must be in [2, "
                    + encoder.config().maxPositions() + "] (the model's positions), got " + maxTokens);
        }
        checkVocabulary(encoder, tokenizerJson);
        try {
            HuggingFaceTokenizer tokenizer = HuggingFaceTokenizer.builder()
                    .optTokenizerPath(tokenizerJson)
                    .optTruncation(false)
                    .optPadding(false)
                    .build();
            return new SentenceEmbedder(encoder, tokenizer, maxTokens);
        } catch (IOException e) {
            throw new UncheckedIOException(tokenizerJson + ": cannot read the tokenizer: " + e.getMessage(), e);
        } catch (RuntimeException e) {
            throw new IllegalArgumentException(
                    "tokenizerJson: " + tokenizerJson + " is not a readable tokenizer.json: " + e.getMessage(), e);
        }
    }

    /*
     * A tokenizer of another model produces ids that index the wrong rows of the embedding table, or past its end:
     * nonsense embeddings or a failure at the first long word. Its vocabulary must fit the table, and may be smaller
     * only by the padding some exports add to round the table up (less than 128 rows).
     */
    private static void checkVocabulary(BertEncoder encoder, Path tokenizerJson) {
        long vocab;
        try {
            vocab = TokenizerVocab.size(tokenizerJson);
        } catch (IOException e) {
            throw new UncheckedIOException(tokenizerJson + ": cannot read the tokenizer: " + e.getMessage(), e);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(
                    "tokenizerJson: " + tokenizerJson + " is not a readable tokenizer.json: " + e.getMessage(), e);
        }
        int rows = encoder.config().vocabSize();
        if (vocab < 0 || vocab > rows || vocab < rows - 127) {
            throw new IllegalArgumentException("tokenizerJson: " + tokenizerJson + " has a vocabulary of "
                    + (vocab < 0 ? "no tokens" : vocab + " tokens") + " but the embedding table of " + encoder.source()
                    + " has " + rows + " rows: the tokenizer is of another model");
        }
    }

    /** {@return the encoder} */
    public BertEncoder encoder() {
        return encoder;
    }

    /** {@return the most tokens of one text, special tokens included} */
    public int maxTokens() {
        return maxTokens;
    }

    /**
     * The token ids of a text, truncated at {@link #maxTokens()}.
     *
     * @param text the text, not blank
     * @return its ids, with {@code [CLS]} and {@code [SEP]}
     */
    public int[] tokenIds(String text) {
        return truncate(toInts(encode(text, "text").getIds()));
    }

    /**
     * A sequence cut to {@link #maxTokens()} as the tokenizer's own truncation cuts one text: its first tokens, then
     * its last ({@code [SEP]}).
     */
    private int[] truncate(int[] ids) {
        if (ids.length <= maxTokens) {
            return ids;
        }
        int[] cut = java.util.Arrays.copyOf(ids, maxTokens);
        cut[maxTokens - 1] = ids[ids.length - 1];
        return cut;
    }

    /**
     * Embeddings of texts, run as one packed batch.
     *
     * @param texts the texts, none blank
     * @return one embedding per text, in order
     * @throws IllegalArgumentException naming the first null or blank text
     */
    public List<Embedding> embed(List<String> texts) {
        Objects.requireNonNull(texts, "texts");
        if (texts.isEmpty()) {
            throw new IllegalArgumentException("texts: none, need at least one");
        }
        List<int[]> ids = new ArrayList<>(texts.size());
        boolean[] truncated = new boolean[texts.size()];
        for (int i = 0; i < texts.size(); i++) {
            int[] all = toInts(encode(texts.get(i), "texts[" + i + "]").getIds());
            ids.add(truncate(all));
            truncated[i] = all.length > maxTokens;
        }
        float[][] vectors = encoder.embed(ids);
        List<Embedding> out = new ArrayList<>(texts.size());
        for (int i = 0; i < vectors.length; i++) {
            out.add(new Embedding(vectors[i], ids.get(i).length, truncated[i]));
        }
        return out;
    }

    /**
     * Embeddings of texts of any length, as LangChain4j's in-process models compute them: a text longer than
     * {@link #maxTokens()} is cut into parts of at most {@code maxTokens - 2} tokens (never inside a word: a part
     * ends before a {@code ##} continuation piece), each part embedded with its own {@code [CLS]} and {@code [SEP]},
     * and the parts' pooled states averaged, weighted by their token counts, then scaled to unit length. A text that
     * fits is embedded as {@link #embed} does. All parts of all texts run as one packed batch.
     *
     * @param texts the texts, none blank
     * @return one embedding per text, in order, {@link Embedding#tokens()} counting all of the text's tokens and
     *     {@link Embedding#truncated()} false
     * @throws IllegalArgumentException naming the first null or blank text
     */
    public List<Embedding> embedInParts(List<String> texts) {
        Objects.requireNonNull(texts, "texts");
        if (texts.isEmpty()) {
            throw new IllegalArgumentException("texts: none, need at least one");
        }
        List<int[]> parts = new ArrayList<>();
        List<int[]> partsOfText = new ArrayList<>(texts.size()); // [first part, part count, tokens]
        for (int i = 0; i < texts.size(); i++) {
            Encoding e = encode(texts.get(i), "texts[" + i + "]");
            int[] ids = toInts(e.getIds());
            int first = parts.size();
            if (ids.length <= maxTokens) {
                parts.add(ids);
            } else {
                split(ids, e.getTokens(), parts);
            }
            partsOfText.add(new int[] {first, parts.size() - first, ids.length});
        }
        HiddenStates states = encoder.encode(parts);
        int h = states.hidden();
        boolean cls = encoder.config().pooling() == BertConfig.Pooling.CLS;
        List<Embedding> out = new ArrayList<>(texts.size());
        for (int[] text : partsOfText) {
            double[] sum = new double[h];
            double weights = 0;
            for (int p = text[0]; p < text[0] + text[1]; p++) {
                int from = states.offsets()[p];
                int count = cls ? 1 : states.length(p);
                // A part's weight is its tokens without [CLS] and [SEP]; a lone part needs none.
                double weight = text[1] == 1 ? 1 : states.length(p) - 2;
                for (int t = from; t < from + count; t++) {
                    for (int x = 0; x < h; x++) {
                        sum[x] += weight / count * states.values()[t * h + x];
                    }
                }
                weights += weight;
            }
            double norm = 0;
            for (int x = 0; x < h; x++) {
                sum[x] /= weights;
                norm += sum[x] * sum[x];
            }
            double inverse = norm > 0 ? 1 / Math.sqrt(norm) : 0;
            float[] vector = new float[h];
            for (int x = 0; x < h; x++) {
                vector[x] = (float) (sum[x] * inverse);
            }
            out.add(new Embedding(vector, text[2], false));
        }
        return out;
    }

    /*
     * The parts of an over-long sequence: its tokens between [CLS] (first) and [SEP] (last) in runs of at most
     * maxTokens - 2, each run ending before a "##" piece so no word is split (unless one word alone is longer than a
     * part), each given the sequence's own [CLS] and [SEP].
     */
    private void split(int[] ids, String[] tokens, List<int[]> parts) {
        int size = maxTokens - 2;
        int last = ids.length - 1;
        int from = 1;
        while (from < last) {
            int to = from + size;
            if (to >= last) {
                to = last;
            } else {
                int end = to;
                while (end > from && tokens[end].startsWith("##")) {
                    end--;
                }
                to = end > from ? end : to;
            }
            int[] part = new int[to - from + 2];
            part[0] = ids[0];
            System.arraycopy(ids, from, part, 1, to - from);
            part[part.length - 1] = ids[last];
            parts.add(part);
            from = to;
        }
    }

    private Encoding encode(String text, String name) {
        if (text == null) {
            throw new IllegalArgumentException(name + ": null");
        }
        if (text.isBlank()) {
            throw new IllegalArgumentException(name + ": empty or blank text has nothing to embed");
        }
        return tokenizer.encode(text, true, false);
    }

    private static int[] toInts(long[] ids) {
        int[] out = new int[ids.length];
        for (int i = 0; i < ids.length; i++) {
            out[i] = (int) ids[i];
        }
        return out;
    }

    @Override
    public void close() {
        tokenizer.close();
    }
}
