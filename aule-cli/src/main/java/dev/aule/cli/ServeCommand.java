package dev.aule.cli;

import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.bench.ServeConfig;
import dev.aule.bench.ServeReport;
import dev.aule.bench.ServingSimulation;
import dev.aule.serving.KvFormat;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.ServingPredicates;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/** {@code aule bench serve}: a simulated serving loop (continuous batching over a paged KV cache). */
@Command(
        name = "serve",
        description = {
            "Simulate LLM serving with the attention layer alone: Poisson arrivals with random prompt and",
            "output lengths, continuous batching over a paged KV cache, a system prompt shared through fork.",
            "Reports tokens/s, step latency and cache memory against per-request contiguous caches."
        })
final class ServeCommand extends AuleCommand {
    @Option(names = "--requests", defaultValue = "48", description = "requests to serve (default ${DEFAULT-VALUE})")
    private int requests;

    @Option(
            names = "--rate",
            defaultValue = "0.25",
            description = "mean arrivals per decode step, Poisson (default ${DEFAULT-VALUE})")
    private double rate;

    @Option(
            names = "--system-prompt",
            defaultValue = "512",
            description = "tokens of the shared system prompt (default ${DEFAULT-VALUE})")
    private int systemPrompt;

    @Option(
            names = "--prompt",
            defaultValue = "32-256",
            paramLabel = "MIN-MAX",
            description = "own prompt length range, uniform (default ${DEFAULT-VALUE})")
    private String prompt;

    @Option(
            names = "--output",
            defaultValue = "16-192",
            paramLabel = "MIN-MAX",
            description = "generated length range, uniform (default ${DEFAULT-VALUE})")
    private String output;

    @Option(
            names = "--max-batch",
            defaultValue = "16",
            description = "most requests decoding at once (default ${DEFAULT-VALUE})")
    private int maxBatch;

    @Option(
            names = "--blocks",
            defaultValue = "1024",
            description = "blocks in the paged pool (default ${DEFAULT-VALUE})")
    private int blocks;

    @Option(names = "--block-size", defaultValue = "16", description = "tokens per block (default ${DEFAULT-VALUE})")
    private int blockSize;

    @Mixin
    private final Heads heads = new Heads();

    @Mixin
    private final HeadDim headDim = new HeadDim();

    @Mixin
    private final StorageType storage = new StorageType(DType.F16);

    @Option(names = "--seed", defaultValue = "42", description = "random seed (default ${DEFAULT-VALUE})")
    private long seed;

    @Option(
            names = "--sinks",
            defaultValue = "-1",
            description = "StreamingLLM: keep this many sink tokens and the --window most recent of each sequence,"
                    + " releasing the blocks between (default: off, keep every token)")
    private int sinks;

    @Option(
            names = "--window",
            defaultValue = "256",
            description = "with --sinks: recent tokens each sequence keeps (default ${DEFAULT-VALUE})")
    private int window;

    @Option(
            names = "--cache-format",
            paramLabel = "FORMATS",
            description = {
                "KV cache storage: f32, f16, bf16, int8, fp8-e4m3, fp8-e5m2; a comma list runs each and",
                "compares them (default: the --dtype storage)"
            })
    private String cacheFormats;

    @Override
    public Integer call() {
        int[] promptRange = range("--prompt", prompt);
        int[] outputRange = range("--output", output);
        ServeConfig config = new ServeConfig(
                requests,
                rate,
                systemPrompt,
                promptRange[0],
                promptRange[1],
                outputRange[0],
                outputRange[1],
                maxBatch,
                blocks,
                blockSize,
                heads.query(),
                heads.kv(),
                headDim.value(),
                storage.value(),
                seed);
        dev.aule.serving.StreamingPolicy streaming = // checked before anything is printed, as the config
                sinks < 0 ? null : new dev.aule.serving.StreamingPolicy(sinks, window);
        PrintWriter out = out();
        Labels labels = new Labels(out, 14);
        out.println("aule bench serve: simulated continuous batching over a paged KV cache (attention layer only)");
        AttentionBackend backend =
                Backends.selected(ServingPredicates.serving(null, 0, null)); // as the host cache selects
        labels.print("backend", backend.name() + ": " + backend.description());
        labels.print(
                "workload",
                String.format(
                        Locale.ROOT,
                        "%d requests, %.2f arrivals/step (Poisson), system prompt %d shared by fork, prompt %s, output %s",
                        requests,
                        rate,
                        systemPrompt,
                        prompt,
                        output));
        labels.print(
                "cache",
                String.format(
                        Locale.ROOT,
                        "%d blocks of %d tokens, Hq=%d Hkv=%d D=%d, %s, max batch %d",
                        config.blocks(),
                        config.blockSize(),
                        config.queryHeads(),
                        config.kvHeads(),
                        config.headDim(),
                        cacheFormats == null ? config.dtype() : cacheFormats + " (inputs " + config.dtype() + ")",
                        config.maxBatch()));
        out.flush();
        List<KvFormat> formats = formats();
        if (streaming != null) {
            for (KvFormat format : formats) {
                if (format.quantized()) {
                    throw usageError("--sinks: streaming needs an f32, f16 or bf16 cache, not " + format.cliName());
                }
            }
            labels.print(
                    "streaming", sinks + " sink tokens and a window of " + window + " (StreamingLLM), blocks released");
            out.flush();
        }
        List<ServeReport> reports = new ArrayList<>();
        for (KvFormat format : formats) {
            if (formats.size() > 1) {
                labels.print("cache format", format.cliName());
            }
            ServeReport r = new ServingSimulation(config, format, streaming).run();
            reports.add(r);
            print(out, labels, r);
        }
        if (formats.size() > 1) {
            TextTable table = new TextTable(
                    TextTable.Column.left("cache format"),
                    TextTable.Column.right("tokens/s"),
                    TextTable.Column.right("vs first"),
                    TextTable.Column.right("step p50 ms"),
                    TextTable.Column.right("peak MiB"),
                    TextTable.Column.right("pool MiB"));
            for (int i = 0; i < formats.size(); i++) {
                ServeReport r = reports.get(i);
                table.add(
                        formats.get(i).cliName(),
                        String.format(Locale.ROOT, "%.0f", r.tokensPerSecond()),
                        String.format(
                                Locale.ROOT,
                                "%.2fx",
                                r.tokensPerSecond() / reports.get(0).tokensPerSecond()),
                        String.format(Locale.ROOT, "%.2f", r.stepP50Millis()),
                        mib(r.peakPagedBytes()),
                        mib(r.poolBytes()));
            }
            out.print(table.render(""));
        }
        out.flush();
        return 0;
    }

    /** The formats of {@code --cache-format}, or the storage dtype's. */
    private List<KvFormat> formats() {
        List<KvFormat> formats = new ArrayList<>();
        if (cacheFormats == null) {
            formats.add(KvFormat.of(storage.value()));
            return formats;
        }
        for (String name : cacheFormats.split(",", -1)) {
            try {
                formats.add(KvFormat.parse(name));
            } catch (IllegalArgumentException e) {
                throw usageError("--cache-format: " + e.getMessage());
            }
        }
        return formats;
    }

    private void print(PrintWriter out, Labels labels, ServeReport r) {
        labels.print(
                "served",
                String.format(
                        Locale.ROOT,
                        "%d requests in %d steps, %.2f s, mean batch %.1f, %d preempted",
                        r.requests(),
                        r.steps(),
                        r.seconds(),
                        r.meanBatch(),
                        r.preemptions()));
        labels.print(
                "throughput",
                String.format(
                        Locale.ROOT,
                        "%.0f generated tokens/s (%d tokens); %.0f tokens/s with %d prompt tokens",
                        r.tokensPerSecond(),
                        r.generatedTokens(),
                        r.allTokensPerSecond(),
                        r.promptTokens()));
        labels.print(
                "step latency",
                String.format(Locale.ROOT, "p50 %.2f ms, p99 %.2f ms", r.stepP50Millis(), r.stepP99Millis()));
        TextTable memory =
                new TextTable(TextTable.Column.left("KV cache memory at peak"), TextTable.Column.right("MiB"));
        memory.add("paged (blocks in use)", mib(r.peakPagedBytes()));
        memory.add("contiguous per-request caches", mib(r.peakContiguousBytes()));
        memory.add("paged pool (allocated)", mib(r.poolBytes()));
        out.print(memory.render(""));
        out.printf(
                Locale.ROOT,
                "paged holds %.0f%% of what per-request contiguous caches would need%n",
                100.0 * r.peakPagedBytes() / Math.max(1, r.peakContiguousBytes()));
        out.flush();
    }

    private static String mib(long bytes) {
        return String.format(Locale.ROOT, "%.1f", bytes / (1024.0 * 1024.0));
    }

    private int[] range(String option, String value) {
        String[] parts = value.split("-", -1);
        try {
            if (parts.length == 1) {
                int n = Integer.parseInt(parts[0].trim());
                return new int[] {n, n};
            }
            if (parts.length == 2) {
                return new int[] {Integer.parseInt(parts[0].trim()), Integer.parseInt(parts[1].trim())};
            }
        } catch (NumberFormatException ignored) {
            // reported below
        }
        throw usageError(option + ": expected MIN-MAX or N, got '" + value + "'");
    }
}
