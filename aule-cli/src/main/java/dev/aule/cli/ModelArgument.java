package dev.aule.cli;

import dev.aule.models.BertConfig;
import dev.aule.models.ModelFiles;
import dev.aule.models.SentenceModel;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Function;

/**
 * The model a command's {@code --model FILE|NAME [--tokenizer FILE]} names, as files: an ONNX file with its tokenizer
 * (mean pooling), or a known model's files copied out of its LangChain4j jar with its own pooling. {@link #close()}
 * deletes such copies.
 *
 * @param onnx the ONNX file
 * @param tokenizer the tokenizer.json
 * @param pooling how the model pools its hidden states
 * @param copies the copied files, or null for files the user gave
 */
record ModelArgument(Path onnx, Path tokenizer, BertConfig.Pooling pooling, ModelFiles copies)
        implements AutoCloseable {
    /**
     * Resolves the arguments; {@code usageError} turns a message into the command's usage error.
     *
     * @param model the value of {@code --model}: a path (an existing file, or one ending in {@code .onnx}) or a name
     * @param tokenizer the value of {@code --tokenizer}, or null
     */
    static ModelArgument resolve(String model, Path tokenizer, Function<String, RuntimeException> usageError) {
        Path onnx;
        if (!model.endsWith(".onnx") && !Files.exists(Path.of(model))) {
            SentenceModel named;
            try {
                named = SentenceModel.of(model);
            } catch (IllegalArgumentException e) {
                throw usageError.apply("--model: '" + model + "' is neither a file nor a known model name ("
                        + e.getMessage().substring(e.getMessage().indexOf("expected") + 9) + ")");
            }
            if (tokenizer != null) {
                throw usageError.apply("--tokenizer: not with a model name, whose jar holds its tokenizer");
            }
            ModelFiles copies;
            try {
                copies = ModelFiles.copy(named);
            } catch (IllegalArgumentException e) {
                throw usageError.apply("--model " + e.getMessage());
            }
            return new ModelArgument(copies.onnx(), copies.tokenizer(), named.pooling(), copies);
        }
        onnx = Path.of(model);
        if (tokenizer == null) {
            throw usageError.apply("--tokenizer: needed with an ONNX file");
        }
        for (Path p : new Path[] {onnx, tokenizer}) {
            if (!Files.isRegularFile(p)) {
                throw usageError.apply("no such file: " + p);
            }
        }
        return new ModelArgument(onnx, tokenizer, BertConfig.Pooling.MEAN, null);
    }

    /** Deletes the copied files, if any (once the encoder and tokenizer are loaded, nothing reads them). */
    @Override
    public void close() {
        if (copies != null) {
            copies.close();
        }
    }
}
