package dev.aule.cli;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.aule.bench.BenchShape;
import dev.aule.bench.Contenders;
import dev.aule.bench.FmaPeak;
import dev.aule.bench.PreparedAttention;
import dev.aule.models.BertConfig;
import dev.aule.models.BertEncoder;
import dev.aule.models.EncoderTimings;
import dev.aule.models.SentenceEmbedder;
import me.tongfei.progressbar.ProgressBar;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategoryChartBuilder;
import org.knowm.xchart.style.Styler;
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
 *
 * <p>Without {@code --file} it runs three workloads built from its own English sentences: a batch of 32 texts of
 * mixed lengths, and single inputs of exactly 128 and 512 tokens (the sentences run together, cut there). For each
 * it reports the share of aule's time spent in attention, and at the longest single input it times attention alone
 * at the model's shape (aule's cpu backend, the naive way and ONNX Runtime's {@code MultiHeadAttention}).
 */
@Command(
        name = "embed",
        description = {
            "Time sentence embeddings of a BERT-family ONNX model: aule-models (pure Java) against ONNX Runtime",
            "on the same file and token ids, with the share of aule's time in attention. Writes embed.csv and",
            "embed.png. Exits 1 if the two disagree (cosine below 0.99999)."
        })
final class BenchEmbedCommand extends AuleCommand {
    @Option(
            names = "--model",
            defaultValue = "all-minilm-l6-v2",
            paramLabel = "FILE|NAME",
            description = "The model's ONNX file, or a model name: all-minilm-l6-v2 (default), bge-small-en-v1.5,"
                    + " e5-small-v2 (from its LangChain4j jar on the class path or in ~/.m2).")
    private String modelArg;

    @Option(
            names = "--tokenizer",
            paramLabel = "FILE",
            description = "The model's tokenizer.json; needed with an ONNX file.")
    private Path tokenizer;

    @Option(
            names = "--file",
            paramLabel = "FILE",
            description = "Time texts of FILE instead, one per non-blank line, in batches of --batch.")
    private Path file;

    @Option(
            names = "--batch",
            defaultValue = "32",
            paramLabel = "N",
            description = "Texts per call with --file (default ${DEFAULT-VALUE}).")
    private int batch;

    @Option(
            names = "--seconds",
            defaultValue = "3",
            paramLabel = "S",
            description = "Time each contender for about S seconds per workload after warm-up (default"
                    + " ${DEFAULT-VALUE}).")
    private double seconds;

    @Option(
            names = "--out",
            defaultValue = "bench-results",
            paramLabel = "DIR",
            description = "Directory for embed.csv and embed.png (default ${DEFAULT-VALUE}).")
    private Path outDir;

    /** Stack of the thread the benchmark runs on. */
    private static final long STACK_BYTES = 64L << 20;

    /** The lengths of the built-in single inputs, in tokens with the special ones. */
    private static final int[] SINGLE_LENGTHS = {128, 512};

    /** Texts of the built-in batch. */
    private static final int BUILT_IN_BATCH = 32;

    /**
     * One workload: its label, its calls (each a batch of token id sequences) and its totals.
     *
     * @param label what the table calls it
     * @param batches the calls of one pass
     * @param texts texts per pass
     * @param tokens tokens per pass
     */
    private record Workload(String label, List<List<int[]>> batches, int texts, int tokens) {
        static Workload of(String label, List<List<int[]>> batches) {
            int texts = 0;
            int tokens = 0;
            for (List<int[]> b : batches) {
                texts += b.size();
                for (int[] ids : b) {
                    tokens += ids.length;
                }
            }
            return new Workload(label, batches, texts, tokens);
        }
    }

    /**
     * One workload's figures.
     *
     * @param workload the workload
     * @param auleSeconds aule's seconds per pass
     * @param ortSeconds ONNX Runtime's seconds per pass
     * @param attentionShare the share of aule's time in attention
     * @param denseGflops the rate of aule's dense layers (with their epilogues)
     * @param worstCosine the least cosine between the two contenders' embeddings
     */
    private record Result(
            Workload workload,
            double auleSeconds,
            double ortSeconds,
            double attentionShare,
            double denseGflops,
            double worstCosine) {}

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
        PrintWriter out = out();
        try (ModelArgument files = ModelArgument.resolve(modelArg, tokenizer, this::usageError)) {
            BertEncoder encoder = BertEncoder.load(files.onnx(), files.pooling());
            BertConfig c = encoder.config();
            try (SentenceEmbedder embedder = SentenceEmbedder.of(encoder, files.tokenizer(), c.maxPositions());
                    OrtEnvironment env = OrtEnvironment.getEnvironment();
                    OrtSession session = env.createSession(files.onnx().toString(), new OrtSession.SessionOptions())) {
                List<Workload> workloads = workloads(embedder);
                out.printf(
                        Locale.ROOT,
                        "aule bench embed: %s (%d layers, %d heads of %d), %d threads, about %.0f s per contender"
                                + " and workload%n",
                        files.onnx().getFileName(),
                        c.layers(),
                        c.heads(),
                        c.headDim(),
                        Runtime.getRuntime().availableProcessors(),
                        seconds);
                out.flush();
                List<Result> results = new ArrayList<>();
                Workload longest = workloads.stream()
                        .filter(w -> w.texts() == 1)
                        .reduce((a, b) -> b.tokens() >= a.tokens() ? b : a)
                        .orElse(null);
                double[] attention = null;
                double productsGflops = Double.NaN;
                double peak;
                try (ProgressBar bar = progressBar("embed", workloads.size() * 2 + (longest == null ? 0 : 4) + 1)) {
                    bar.setExtraMessage("FMA peak");
                    peak = FmaPeak.measure(Math.min(0.5, seconds / 4), 3);
                    bar.step();
                    for (Workload w : workloads) {
                        bar.setExtraMessage(w.label());
                        results.add(measure(w, encoder, env, session, bar));
                    }
                    if (longest != null) {
                        bar.setExtraMessage("attention alone");
                        attention = attentionAlone(c, longest.tokens(), bar);
                        bar.setExtraMessage("dense products alone");
                        productsGflops = encoder.denseProductsGflops(longest.tokens(), seconds);
                        bar.step();
                    }
                }
                double worst =
                        results.stream().mapToDouble(Result::worstCosine).min().orElse(1);
                out.printf(Locale.ROOT, "agreement: worst cosine aule vs onnxruntime %.9f%n", worst);
                if (worst < 0.99999) {
                    out.println("FAILED: the embeddings differ");
                    out.flush();
                    return ErrorHandlers.FAILURE;
                }
                out.printf(
                        Locale.ROOT,
                        "FMA peak: %.1f GFLOP/s (independent %d-bit FMAs in registers, %d threads, same run)%n",
                        peak,
                        FmaPeak.lanes() * Float.SIZE,
                        Runtime.getRuntime().availableProcessors());
                out.println();
                out.print(table(results, peak).render("  "));
                if (attention != null) {
                    out.printf(
                            Locale.ROOT,
                            "%nDense products alone at %s (layer 0's four, no bias, activation or residual):"
                                    + " %.1f GFLOP/s, %.0f %% of the FMA peak%n",
                            longest.label(),
                            productsGflops,
                            100 * productsGflops / peak);
                    printAttention(out, c, longest, results.get(workloads.indexOf(longest)), attention);
                }
                List<Path> written = write(results);
                out.println();
                out.println("Wrote "
                        + String.join(", ", written.stream().map(Path::toString).toList()));
                out.flush();
                return 0;
            }
        }
    }

    /** The built-in workloads, or the one of {@code --file}. */
    private List<Workload> workloads(SentenceEmbedder embedder) throws IOException {
        List<Workload> workloads = new ArrayList<>();
        if (file != null) {
            List<String> texts = Files.readAllLines(file, StandardCharsets.UTF_8).stream()
                    .filter(l -> !l.isBlank())
                    .toList();
            if (texts.isEmpty()) {
                throw usageError("--file: no texts in " + file);
            }
            List<List<int[]>> batches = new ArrayList<>();
            for (int from = 0; from < texts.size(); from += batch) {
                List<int[]> ids = new ArrayList<>();
                for (String t : texts.subList(from, Math.min(texts.size(), from + batch))) {
                    ids.add(embedder.tokenIds(t));
                }
                batches.add(ids);
            }
            Workload w = Workload.of("", batches);
            workloads.add(
                    Workload.of(w.texts() + " texts of " + file.getFileName() + ", batches of " + batch, batches));
            return workloads;
        }
        List<String> texts = builtInTexts();
        List<int[]> mixed = new ArrayList<>();
        for (String t : texts.subList(0, Math.min(BUILT_IN_BATCH, texts.size()))) {
            mixed.add(embedder.tokenIds(t));
        }
        Workload batch32 = Workload.of("", List.of(mixed));
        workloads.add(
                Workload.of(batch32.texts() + " texts, " + batch32.tokens() + " tokens, one batch", List.of(mixed)));
        // The sentences run together, cut to the length: [CLS], the first tokens, [SEP].
        int[] all = embedder.tokenIds(String.join(" ", texts));
        for (int length : SINGLE_LENGTHS) {
            if (length > all.length) {
                continue;
            }
            int[] ids = Arrays.copyOf(all, length);
            ids[length - 1] = all[all.length - 1];
            workloads.add(Workload.of("1 text of " + length + " tokens", List.of(List.of(ids))));
        }
        return workloads;
    }

    private static List<String> builtInTexts() throws IOException {
        try (InputStream in = BenchEmbedCommand.class.getResourceAsStream("embed-texts.txt")) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8)
                    .lines()
                    .filter(l -> !l.isBlank())
                    .toList();
        }
    }

    private Result measure(Workload w, BertEncoder encoder, OrtEnvironment env, OrtSession session, ProgressBar bar)
            throws OrtException {
        double worst = 1;
        for (List<int[]> ids : w.batches()) {
            float[][] a = encoder.embed(ids);
            float[][] b = ort(env, session, ids);
            for (int i = 0; i < a.length; i++) {
                worst = Math.min(worst, cosine(a[i], b[i]));
            }
        }
        EncoderTimings timings = new EncoderTimings();
        double auleSeconds = time(
                () -> {
                    for (List<int[]> ids : w.batches()) {
                        BertEncoder.pool(
                                encoder.encode(ids, null, timings),
                                encoder.config().pooling());
                    }
                },
                timings);
        bar.step();
        double ortSeconds = time(
                () -> {
                    for (List<int[]> ids : w.batches()) {
                        try {
                            ort(env, session, ids);
                        } catch (OrtException e) {
                            throw new IllegalStateException(e);
                        }
                    }
                },
                null);
        bar.step();
        double share = timings.nanos(EncoderTimings.Stage.ATTENTION) / (double) Math.max(1, timings.totalNanos());
        double denseSeconds = timings.nanos(EncoderTimings.Stage.DENSE) / 1e9 / Math.max(1, timings.passes());
        return new Result(
                w, auleSeconds, ortSeconds, share, denseFlops(encoder.config(), w) / denseSeconds / 1e9, worst);
    }

    /**
     * Milliseconds per call of attention alone at the model's shape for one sequence of {@code tokens}: aule's cpu
     * backend, the naive way, ONNX Runtime's MultiHeadAttention (NaN where a contender cannot run).
     */
    private double[] attentionAlone(BertConfig c, int tokens, ProgressBar bar) {
        BenchShape shape = new BenchShape(c.heads(), tokens, c.headDim(), false);
        String[] names = {"cpu", Contenders.NAIVE, Contenders.ONNXRUNTIME};
        double[] ms = new double[names.length];
        for (int i = 0; i < names.length; i++) {
            if (Contenders.unfit(names[i], shape).isPresent()) {
                ms[i] = Double.NaN;
            } else {
                try (PreparedAttention prepared = Contenders.prepare(names[i], shape)) {
                    ms[i] = time(prepared::run, null) * 1e3;
                }
            }
            bar.step();
        }
        return ms;
    }

    private static void printAttention(PrintWriter out, BertConfig c, Workload w, Result r, double[] ms) {
        double inModel = r.auleSeconds() * r.attentionShare() * 1e3 / c.layers();
        out.println();
        out.printf(
                Locale.ROOT,
                "Attention at %s (1 x %d heads x %d x %d, non-causal), ms per layer:%n",
                w.label(),
                c.heads(),
                w.tokens(),
                c.headDim());
        TextTable t = new TextTable(left("attention"), right("ms"), right("naive / this"));
        t.add("aule in the model (packed, strided views)", fmt(inModel), fmt(ms[1] / inModel) + "x");
        t.add("aule cpu backend alone (contiguous)", fmt(ms[0]), fmt(ms[1] / ms[0]) + "x");
        t.add("naive (scores materialised)", fmt(ms[1]), "1.00x");
        t.add("onnxruntime MultiHeadAttention", fmt(ms[2]), fmt(ms[1] / ms[2]) + "x");
        out.print(t.render("  "));
    }

    /** The FLOPs of the dense layers of one pass over the workload's tokens: {@code 2 x tokens x weights}. */
    private static double denseFlops(BertConfig c, Workload w) {
        double weights = 4.0 * c.hidden() * c.hidden() + 2.0 * c.hidden() * c.intermediate();
        return 2.0 * w.tokens() * weights * c.layers();
    }

    private static TextTable table(List<Result> results, double peak) {
        TextTable t = new TextTable(
                left("workload"),
                right("aule ms"),
                right("ort ms"),
                right("aule tokens/s"),
                right("ort tokens/s"),
                right("aule / ort"),
                right("attention share"),
                right("dense GFLOP/s"),
                right("dense % peak"));
        for (Result r : results) {
            t.add(
                    r.workload().label(),
                    fmt(r.auleSeconds() * 1e3),
                    fmt(r.ortSeconds() * 1e3),
                    String.format(Locale.ROOT, "%.0f", r.workload().tokens() / r.auleSeconds()),
                    String.format(Locale.ROOT, "%.0f", r.workload().tokens() / r.ortSeconds()),
                    fmt(r.ortSeconds() / r.auleSeconds()) + "x",
                    String.format(Locale.ROOT, "%.0f %%", 100 * r.attentionShare()),
                    String.format(Locale.ROOT, "%.1f", r.denseGflops()),
                    String.format(Locale.ROOT, "%.0f %%", 100 * r.denseGflops() / peak));
        }
        return t;
    }

    private List<Path> write(List<Result> results) throws IOException {
        Files.createDirectories(outDir);
        Path csv = outDir.resolve("embed.csv");
        StringBuilder sb =
                new StringBuilder("workload,texts,tokens,aule_ms,ort_ms,aule_over_ort,attention_share,dense_gflops\n");
        for (Result r : results) {
            sb.append('"')
                    .append(r.workload().label())
                    .append('"')
                    .append(String.format(
                            Locale.ROOT,
                            ",%d,%d,%.3f,%.3f,%.4f,%.4f,%.2f\n",
                            r.workload().texts(),
                            r.workload().tokens(),
                            r.auleSeconds() * 1e3,
                            r.ortSeconds() * 1e3,
                            r.ortSeconds() / r.auleSeconds(),
                            r.attentionShare(),
                            r.denseGflops()));
        }
        Files.writeString(csv, sb.toString());
        System.setProperty("java.awt.headless", "true");
        CategoryChart chart = new CategoryChartBuilder()
                .width(900)
                .height(520)
                .title("Sentence embeddings, tokens per second (higher is better)")
                .xAxisTitle("workload")
                .yAxisTitle("tokens/s")
                .build();
        chart.getStyler().setLegendPosition(Styler.LegendPosition.InsideNW);
        chart.getStyler().setYAxisMin(0.0);
        List<String> labels = results.stream().map(r -> r.workload().label()).toList();
        chart.addSeries(
                "aule-models (pure Java)",
                labels,
                results.stream()
                        .map(r -> (Number) (r.workload().tokens() / r.auleSeconds()))
                        .toList());
        chart.addSeries(
                "onnxruntime 1.29 (CPU)",
                labels,
                results.stream()
                        .map(r -> (Number) (r.workload().tokens() / r.ortSeconds()))
                        .toList());
        Path png = outDir.resolve("embed.png");
        BitmapEncoder.saveBitmap(chart, png.toString(), BitmapEncoder.BitmapFormat.PNG);
        return List.of(csv, png);
    }

    private static String fmt(double v) {
        return Double.isNaN(v) ? "-" : String.format(Locale.ROOT, "%.2f", v);
    }

    /**
     * Seconds per pass: warm-up passes for a third of the budget, then the mean of the rest; the timings, when
     * given, record only the timed passes.
     */
    private double time(Runnable pass, EncoderTimings timings) {
        long budget = (long) (seconds * 1e9);
        long warmEnd = System.nanoTime() + budget / 3;
        do {
            pass.run();
        } while (System.nanoTime() < warmEnd);
        if (timings != null) {
            timings.reset();
        }
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
