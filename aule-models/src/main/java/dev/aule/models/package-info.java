/**
 * Transformer encoders in pure Java on aule attention: {@link dev.aule.models.BertEncoder} runs a BERT-family
 * encoder whose weights it reads from an ONNX file, and pools its hidden states into sentence embeddings.
 */
package dev.aule.models;
