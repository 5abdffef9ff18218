package dev.aule.models;

/**
 * The shape of a BERT-family encoder: what {@link BertEncoder#load} detects from an ONNX graph, or what a caller
 * gives for a graph whose structure it knows.
 *
 * @param layers transformer layers, at least 1
 * @param hidden hidden size, a multiple of {@code heads}
 * @param heads attention heads
 * @param intermediate the feed-forward inner size
 * @param vocabSize rows of the word embedding table
 * @param maxPositions rows of the position embedding table: the longest sequence the encoder takes
 * @param typeVocabSize rows of the token-type embedding table
 * @param layerNormEps the epsilon every LayerNorm adds to the variance, positive
 * @param activation the feed-forward activation
 * @param pooling how {@link BertEncoder#embed} pools a sequence's hidden states into one vector
 */
public record BertConfig(
        int layers,
        int hidden,
        int heads,
        int intermediate,
        int vocabSize,
        int maxPositions,
        int typeVocabSize,
        double layerNormEps,
        Activation activation,
        Pooling pooling) {

    /** The feed-forward activation of a layer. */
    public enum Activation {
        /** {@code x/2 (1 + erf(x/sqrt 2))}, BERT's GELU. */
        GELU_ERF,
        /** {@code x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))}, the tanh approximation of GELU. */
        GELU_TANH,
        /** {@code max(0, x)}. */
        RELU
    }

    /** How a sequence's hidden states become one embedding. */
    public enum Pooling {
        /** The mean over the sequence's tokens (sentence-transformers' default, all-MiniLM's). */
        MEAN,
        /** The hidden state of the first token ({@code [CLS]}). */
        CLS
    }

    /**
     * Checks the values.
     *
     * @throws IllegalArgumentException naming the first value that breaks a rule above
     */
    public BertConfig {
        positive("layers", layers);
        positive("hidden", hidden);
        positive("heads", heads);
        positive("intermediate", intermediate);
        positive("vocabSize", vocabSize);
        positive("maxPositions", maxPositions);
        positive("typeVocabSize", typeVocabSize);
        if (hidden % heads != 0) {
            throw new IllegalArgumentException(
                    "hidden: " + hidden + " is not a multiple of heads (" + heads + "): heads must split it evenly");
        }
        if (!(layerNormEps > 0) || Double.isInfinite(layerNormEps)) {
            throw new IllegalArgumentException("layerNormEps: must be positive and finite, got " + layerNormEps);
        }
        java.util.Objects.requireNonNull(activation, "activation");
        java.util.Objects.requireNonNull(pooling, "pooling");
    }

    /** {@return the size of one head: {@code hidden / heads}} */
    public int headDim() {
        return hidden / heads;
    }

    /**
     * This configuration with another pooling.
     *
     * @param other the pooling to use
     * @return the new configuration
     */
    public BertConfig withPooling(Pooling other) {
        return new BertConfig(
                layers,
                hidden,
                heads,
                intermediate,
                vocabSize,
                maxPositions,
                typeVocabSize,
                layerNormEps,
                activation,
                other);
    }

    private static void positive(String name, int value) {
        if (value < 1) {
            throw new IllegalArgumentException(name + ": must be at least 1, got " + value);
        }
    }
}
