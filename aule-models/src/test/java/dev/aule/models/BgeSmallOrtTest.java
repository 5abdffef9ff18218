package dev.aule.models;

/** The ONNX Runtime agreement checks on bge-small-en-v1.5 (CLS pooling). */
class BgeSmallOrtTest extends OrtAgreementTest {
    @Override
    SentenceModel model() {
        return SentenceModel.BGE_SMALL_EN_V15;
    }

    /** Every text with {@code -Daule.models.allTexts=true}; by default a sample weighted to the long ones. */
    @Override
    boolean everyText() {
        return Boolean.getBoolean("aule.models.allTexts");
    }
}
