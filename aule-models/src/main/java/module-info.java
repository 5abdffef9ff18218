/**
 * aule-models: transformer encoders in pure Java on aule attention, with their weights read from ONNX files.
 */
// "requires-automatic": Hugging Face tokenizers (DJL) is an automatic module (ai.djl.tokenizers).
@SuppressWarnings("requires-automatic")
module dev.aule.models {
    requires transitive dev.aule;
    requires static jdk.incubator.vector;
    requires ai.djl.tokenizers;
    // The VM's array layout (LineAlignment): HotSpot's diagnostic bean.
    requires jdk.management;

    exports dev.aule.models;
    exports dev.aule.models.onnx;
}
