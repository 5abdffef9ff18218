/**
 * A reader of ONNX model files, enough to take the weights and the structure of a graph: {@link
 * dev.aule.models.onnx.OnnxReader} reads a file into an {@link dev.aule.models.onnx.OnnxGraph} of nodes and
 * initializers.
 */
package dev.aule.models.onnx;
