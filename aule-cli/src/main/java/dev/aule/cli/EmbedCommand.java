package dev.aule.cli;

import dev.aule.models.BertConfig;
import dev.aule.models.SentenceEmbedder;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

import static dev.aule.cli.TextTable.Column.left;
import static dev.aule.cli.TextTable.Column.right;

/** {@code aule embed}: sentence embeddings of texts with a BERT-family ONNX model, and their cosine similarities. */
@Command(
        name = "embed",
        description = "Embed texts with a BERT-family ONNX model (e.g. all-MiniLM-L6-v2) run in pure Java on aule"
                + " attention; print the dimensions and the pairwise cosine similarities.")
final class EmbedCommand extends AuleCommand {
    @Option(
            names = "--model",
            required = true,
            paramLabel = "FILE|NAME",
            description = "The model's ONNX file, or a model name: all-minilm-l6-v2, bge-small-en-v1.5, e5-small-v2"
                    + " (from its LangChain4j jar on the class path or in ~/.m2, with its tokenizer and pooling).")
    private String modelArg;

    @Option(
            names = "--tokenizer",
            paramLabel = "FILE",
            description = "The model's tokenizer.json (its truncation and padding are overridden); needed with an"
                    + " ONNX file.")
    private Path tokenizer;

    private Path model;

    @Option(
            names = "--max-tokens",
            paramLabel = "N",
            description = "Truncate each text at N tokens, special tokens included (default: the model's positions).")
    private Integer maxTokens;

    @Option(names = "--file", paramLabel = "FILE", description = "Read texts from FILE too, one per non-blank line.")
    private Path file;

    @Parameters(paramLabel = "TEXT", arity = "0..*", description = "Texts to embed.")
    private List<String> texts = new ArrayList<>();

    @Override
    public Integer call() throws IOException {
        List<String> all = new ArrayList<>(texts);
        if (file != null) {
            Files.readAllLines(file, StandardCharsets.UTF_8).stream()
                    .filter(l -> !l.isBlank())
                    .forEach(all::add);
        }
        if (all.isEmpty()) {
            throw usageError("no texts: give TEXT arguments or --file");
        }
        long start = System.nanoTime();
        SentenceEmbedder loaded;
        try (ModelArgument files = ModelArgument.resolve(modelArg, tokenizer, this::usageError)) {
            model = files.onnx();
            dev.aule.models.BertEncoder encoder = dev.aule.models.BertEncoder.load(model, files.pooling());
            loaded = SentenceEmbedder.of(
                    encoder,
                    files.tokenizer(),
                    maxTokens == null ? encoder.config().maxPositions() : maxTokens);
        }
        PrintWriter out = out();
        BertConfig c = loaded.encoder().config();
        int limit = loaded.maxTokens();
        try (SentenceEmbedder embedder = loaded) {
            double loadMs = (System.nanoTime() - start) / 1e6;
            start = System.nanoTime();
            List<SentenceEmbedder.Embedding> embeddings = embedder.embed(all);
            double embedMs = (System.nanoTime() - start) / 1e6;
            Labels labels = new Labels(out, 12);
            labels.print(
                    "Model",
                    model.getFileName() + ": " + c.layers() + " layers, hidden " + c.hidden() + ", " + c.heads()
                            + " heads of " + c.headDim() + ", FFN " + c.intermediate() + ", "
                            + c.activation().name().toLowerCase(Locale.ROOT) + ", "
                            + c.pooling().name().toLowerCase(Locale.ROOT)
                            + " pooling");
            labels.print("Dimensions", Integer.toString(c.hidden()));
            labels.print(
                    "Time",
                    String.format(
                            Locale.ROOT,
                            "load %.0f ms, embed %d texts %.0f ms (first call, JIT cold)",
                            loadMs,
                            all.size(),
                            embedMs));
            out.println();
            TextTable table = new TextTable(right("#"), right("tokens"), left("truncated"), left("text"));
            for (int i = 0; i < all.size(); i++) {
                SentenceEmbedder.Embedding e = embeddings.get(i);
                table.add(
                        Integer.toString(i + 1),
                        Integer.toString(e.tokens()),
                        e.truncated() ? "yes, at " + limit : "no",
                        shorten(all.get(i)));
            }
            out.print(table.render(""));
            out.println();
            out.println("Cosine similarity:");
            TextTable.Column[] columns = new TextTable.Column[all.size() + 1];
            columns[0] = right("");
            for (int j = 0; j < all.size(); j++) {
                columns[j + 1] = right(Integer.toString(j + 1));
            }
            TextTable cosines = new TextTable(columns);
            for (int i = 0; i < all.size(); i++) {
                String[] row = new String[all.size() + 1];
                row[0] = Integer.toString(i + 1);
                for (int j = 0; j < all.size(); j++) {
                    row[j + 1] = String.format(
                            Locale.ROOT,
                            "%.4f",
                            dot(embeddings.get(i).vector(), embeddings.get(j).vector()));
                }
                cosines.add(row);
            }
            out.print(cosines.render("  "));
        }
        out.flush();
        return 0;
    }

    /** The cosine of two unit vectors. */
    private static double dot(float[] a, float[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) {
            s += (double) a[i] * b[i];
        }
        return s;
    }

    private static String shorten(String text) {
        return text.length() <= 60 ? text : text.substring(0, 57) + "...";
    }
}
