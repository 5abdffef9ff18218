package dev.aule.models;

import java.util.List;

/**
 * The weights of a BERT encoder, in the layout the forward uses: embedding tables row-major {@code [rows][hidden]},
 * dense layers packed, and each layer's query, key and value projections fused into one {@code [hidden][3 hidden]}
 * layer (query columns first).
 */
record BertWeights(
        BertConfig config,
        float[] wordEmbeddings,
        float[] positionEmbeddings,
        float[] typeEmbeddings,
        float[] embeddingNormWeight,
        float[] embeddingNormBias,
        List<Layer> layers) {

    /** One transformer layer. */
    record Layer(
            Linear qkv,
            Linear attentionOutput,
            float[] attentionNormWeight,
            float[] attentionNormBias,
            Linear intermediate,
            Linear output,
            float[] outputNormWeight,
            float[] outputNormBias) {}
}
