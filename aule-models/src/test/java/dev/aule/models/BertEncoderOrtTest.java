package dev.aule.models;

/** The ONNX Runtime agreement checks on all-MiniLM-L6-v2. */
class BertEncoderOrtTest extends OrtAgreementTest {
    @Override
    SentenceModel model() {
        return SentenceModel.ALL_MINILM_L6_V2;
    }
}
