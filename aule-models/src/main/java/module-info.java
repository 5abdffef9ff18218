/**
 * aule-models: transformer encoders in pure Java on aule attention, with their weights read from ONNX files.
 */
module dev.aule.models {
    requires transitive dev.aule;
    requires static jdk.incubator.vector;

    exports dev.aule.models;
    exports dev.aule.models.onnx;
}
