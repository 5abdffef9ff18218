package dev.aule.cli;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.aule.models.BertEncoder;
import dev.aule.models.SentenceEmbedder;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import static dev.aule.cli.TextTable.Column.left;
import static dev.aule.cli.TextTable.Column.right;

/**
 * {@code aule bench embed}: sentence embeddings per second of a BERT-family ONNX model, aule-models (pure Java,
 * packed batches) against ONNX Runtime on the same file (padded batches, mean pooling over the mask, as LangChain4j
 * runs it). Both get the same token ids; their embeddings are checked to agree before anything is timed.
 */
@Command(
        name = "embed",
        description = {
            "Time sentence embeddings of a BERT-family ONNX model: aule-models (pure Java) against ONNX Runtime",
            "on the same file and token ids. Exits 1 if the two disagree (cosine below 0.99999)."
        })
final class BenchEmbedCommand extends AuleCommand {
    @Option(names = "--model", required = true, paramLabel = "FILE", description = "The model's ONNX file.")
    private Path model;

    @Option(names = "--tokenizer", required = true, paramLabel = "FILE", description = "The model's tokenizer.json.")
    private Path tokenizer;

    @Option(
            names = "--file",
            paramLabel = "FILE",
            description = "Texts, one per non-blank line (default: 46 built-in English sentences of 3 to 160 tokens).")
    private Path file;

    @Option(
            names = "--batch",
            defaultValue = "32",
            paramLabel = "N",
            description = "Texts per call (default ${DEFAULT-VALUE}).")
    private int batch;

    @Option(
            names = "--seconds",
            defaultValue = "3",
            paramLabel = "S",
            description = "Time each contender for about S seconds after warm-up (default ${DEFAULT-VALUE}).")
    private double seconds;

    /** Stack of the thread the benchmark runs on. */
    private static final long STACK_BYTES = 64L << 20;

    /**
     * Runs the benchmark on a thread with a 64 MB stack: ONNX Runtime 1.29's native initialisation can overflow the
     * default 1 MB stack of the main thread (a SIGSEGV that ends the JVM, seen with the aule launcher's class path).
     */
    @Override
    public Integer call() throws Exception {
        Object[] result = new Object[1];
        Thread thread = new Thread(
                null,
                () -> {
                    try {
                        result[0] = run();
                    } catch (Exception | Error e) {
                        result[0] = e;
                    }
                },
                "aule-bench-embed",
                STACK_BYTES);
        thread.start();
        thread.join();
        if (result[0] instanceof Exception e) {
            throw e;
        }
        if (result[0] instanceof Error e) {
            throw e;
        }
        return (Integer) result[0];
    }

    private Integer run() throws IOException, OrtException {
        requireAtLeast("--batch", batch, 1);
        if (!(seconds > 0)) {
            throw usageError("--seconds must be positive, got " + seconds);
        }
        for (Path p : List.of(model, tokenizer)) {
            if (!Files.isRegularFile(p)) {
                throw usageError("no such file: " + p);
            }
        }
        List<String> texts = texts();
        PrintWriter out = out();
        BertEncoder encoder = BertEncoder.load(model);
        try (SentenceEmbedder embedder =
                        SentenceEmbedder.of(encoder, tokenizer, encoder.config().maxPositions());
                OrtEnvironment env = OrtEnvironment.getEnvironment();
                OrtSession session = env.createSession(model.toString(), new OrtSession.SessionOptions())) {
            List<List<int[]>> batches = new ArrayList<>();
            int tokens = 0;
            for (int from = 0; from < texts.size(); from += batch) {
                List<int[]> ids = new ArrayList<>();
                for (String t : texts.subList(from, Math.min(texts.size(), from + batch))) {
                    int[] i = embedder.tokenIds(t);
                    ids.add(i);
                    tokens += i.length;
                }
                batches.add(ids);
            }
            out.printf(
                    Locale.ROOT,
                    "aule bench embed: %s, %d texts (%d tokens) in batches of %d, %d threads%n",
                    model.getFileName(),
                    texts.size(),
                    tokens,
                    batch,
                    Runtime.getRuntime().availableProcessors());
            double worst = 1;
            for (List<int[]> ids : batches) {
                float[][] a = encoder.embed(ids);
                float[][] b = ort(env, session, ids);
                for (int i = 0; i < a.length; i++) {
                    worst = Math.min(worst, cosine(a[i], b[i]));
                }
            }
            out.printf(Locale.ROOT, "agreement: worst cosine aule vs onnxruntime %.9f%n", worst);
            if (worst < 0.99999) {
                out.println("FAILED: the embeddings differ");
                out.flush();
                return 1;
            }
            double auleSeconds = time(() -> batches.forEach(encoder::embed));
            double ortSeconds = time(() -> {
                for (List<int[]> ids : batches) {
                    try {
                        ort(env, session, ids);
                    } catch (OrtException e) {
                        throw new IllegalStateException(e);
                    }
                }
            });
            TextTable table =
                    new TextTable(left("contender"), right("ms per pass"), right("texts/s"), right("tokens/s"));
            row(table, "aule-models (pure Java)", auleSeconds, texts.size(), tokens);
            row(table, "onnxruntime 1.29 (CPU)", ortSeconds, texts.size(), tokens);
            out.println();
            out.print(table.render("  "));
            out.flush();
            return 0;
        }
    }

    private List<String> texts() throws IOException {
        List<String> lines;
        if (file != null) {
            lines = Files.readAllLines(file, StandardCharsets.UTF_8);
        } else {
            try (InputStream in = BenchEmbedCommand.class.getResourceAsStream("embed-texts.txt")) {
                lines = new String(in.readAllBytes(), StandardCharsets.UTF_8)
                        .lines()
                        .toList();
            }
        }
        List<String> texts = lines.stream().filter(l -> !l.isBlank()).toList();
        if (texts.isEmpty()) {
            throw usageError("no texts in " + file);
        }
        return texts;
    }

    /** Seconds per pass over all batches: warm-up passes for a third of the budget, then the mean of the rest. */
    private double time(Runnable pass) {
        long budget = (long) (seconds * 1e9);
        long warmEnd = System.nanoTime() + budget / 3;
        do {
            pass.run();
        } while (System.nanoTime() < warmEnd);
        int passes = 0;
        long start = System.nanoTime();
        long elapsed;
        do {
            pass.run();
            passes++;
            elapsed = System.nanoTime() - start;
        } while (elapsed < budget);
        return elapsed / 1e9 / passes;
    }

    private static void row(TextTable table, String name, double secondsPerPass, int texts, int tokens) {
        table.add(
                name,
                String.format(Locale.ROOT, "%.1f", secondsPerPass * 1e3),
                String.format(Locale.ROOT, "%.0f", texts / secondsPerPass),
                String.format(Locale.ROOT, "%.0f", tokens / secondsPerPass));
    }

    /** ONNX Runtime on a batch padded to its longest text, mean-pooled over the attention mask, unit length. */
    private static float[][] ort(OrtEnvironment env, OrtSession session, List<int[]> ids) throws OrtException {
        int longest = ids.stream().mapToInt(a -> a.length).max().orElseThrow();
        long[][] input = new long[ids.size()][longest];
        long[][] mask = new long[ids.size()][longest];
        long[][] types = new long[ids.size()][longest];
        for (int i = 0; i < ids.size(); i++) {
            for (int t = 0; t < ids.get(i).length; t++) {
                input[i][t] = ids.get(i)[t];
                mask[i][t] = 1;
            }
        }
        try (OnnxTensor a = OnnxTensor.createTensor(env, input);
                OnnxTensor m = OnnxTensor.createTensor(env, mask);
                OnnxTensor t = OnnxTensor.createTensor(env, types);
                OrtSession.Result r = session.run(Map.of("input_ids", a, "attention_mask", m, "token_type_ids", t))) {
            float[][][] hidden = (float[][][]) r.get(0).getValue();
            float[][] out = new float[ids.size()][];
            for (int i = 0; i < ids.size(); i++) {
                double[] sum = new double[hidden[i][0].length];
                for (int s = 0; s < ids.get(i).length; s++) {
                    for (int j = 0; j < sum.length; j++) {
                        sum[j] += hidden[i][s][j];
                    }
                }
                double norm = Math.sqrt(Arrays.stream(sum).map(x -> x * x).sum());
                out[i] = new float[sum.length];
                for (int j = 0; j < sum.length; j++) {
                    out[i][j] = (float) (sum[j] / norm);
                }
            }
            return out;
        }
    }

    private static double cosine(float[] a, float[] b) {
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < a.length; i++) {
            dot += (double) a[i] * b[i];
            na += (double) a[i] * a[i];
            nb += (double) b[i] * b[i];
        }
        return dot / Math.sqrt(na * nb);
    }
}
