package dev.aule.models;

/** The ONNX Runtime agreement checks on e5-small-v2 (mean pooling). */
class E5SmallOrtTest extends OrtAgreementTest {
    @Override
    SentenceModel model() {
        return SentenceModel.E5_SMALL_V2;
    }

    /** Every text with {@code -Daule.models.allTexts=true}; by default a sample weighted to the long ones. */
    @Override
    boolean everyText() {
        return Boolean.getBoolean("aule.models.allTexts");
    }
}
