package dev.aule.models.onnx;

/**
 * A node attribute: its name and whichever of the values ONNX sets for its type (float, int, string, tensor, or
 * lists of floats and ints).
 *
 * @param name the attribute's name
 * @param f the float value (0 when unset)
 * @param i the int value (0 when unset)
 * @param s the string value ({@code ""} when unset)
 * @param tensor the tensor value, or null
 * @param floats the float list (empty when unset)
 * @param ints the int list (empty when unset)
 */
public record OnnxAttribute(String name, float f, long i, String s, OnnxTensor tensor, float[] floats, long[] ints) {}
