package dev.aule.bench;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.serving.KvCacheFullException;
import dev.aule.serving.KvFormat;
import dev.aule.serving.PagedKvCache;
import dev.aule.serving.Rope;
import dev.aule.serving.StreamingPolicy;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.SplittableRandom;

/**
 * A serving loop over a {@link PagedKvCache}, with the model's attention layer alone (one layer, no
 * projections): requests arrive at random (Poisson per step) with random prompt and output lengths;
 * each step admits waiting requests while there is room (fork of the shared system prompt, then
 * prefill of its own prompt as attention against the cached prefix), then decodes one token for
 * every running request in one batched paged-attention call (continuous batching). When the pool
 * runs out of blocks the newest request is preempted: freed and queued again from scratch, as vLLM
 * does by recomputation. Keys are rotated by RoPE on the way into the cache.
 *
 * <p>With a {@link StreamingPolicy} every sequence (the system prompt's, so its forks too) keeps its sink tokens and
 * its window only, and prefill goes in chunks of at most the window (append a chunk, attend with its rows), so a
 * long generation holds a bounded number of blocks.
 *
 * <p>Keys, values and queries are random (their values do not change the work); they come from
 * buffers made once, so the loop times attention and cache management only.
 */
public final class ServingSimulation {
    private final ServeConfig config;
    private final SplittableRandom rnd;
    private final PagedKvCache cache;
    private final Rope rope;
    private final AttentionOptions causal =
            AttentionOptions.builder().causal(true).build();
    private final Tensor keys;
    private final Tensor values;
    private final Tensor queries;
    private final long bytesPerToken;
    private final StreamingPolicy streaming; // null: sequences keep every token

    /** One request as the scheduler sees it. */
    private static final class Request {
        final int prompt;
        final int output;
        int seq = -1;
        int generated;

        Request(int prompt, int output) {
            this.prompt = prompt;
            this.output = output;
        }
    }

    public ServingSimulation(ServeConfig config) {
        this(config, KvFormat.of(config.dtype()), null);
    }

    /**
     * A simulation whose sequences follow a StreamingLLM policy ({@code aule bench serve --sinks N --window W}).
     *
     * @param config the workload and the cache
     * @param streaming the sink tokens and window every sequence keeps; null to keep every token
     */
    public ServingSimulation(ServeConfig config, StreamingPolicy streaming) {
        this(config, KvFormat.of(config.dtype()), streaming);
    }

    /**
     * The loop on a pool of {@code cacheFormat} (INT8 and FP8 caches quantize the keys and values, given in the
     * config's dtype, on the way in); the contiguous comparison counts the same bytes per element, scales left
     * out.
     *
     * @param config the workload and the cache
     * @param cacheFormat the pool's storage
     */
    public ServingSimulation(ServeConfig config, KvFormat cacheFormat) {
        this(config, cacheFormat, null);
    }

    /**
     * The loop on a pool of {@code cacheFormat} with every sequence under {@code streaming} (null: none).
     *
     * @param config the workload and the cache
     * @param cacheFormat the pool's storage; streaming needs F32, F16 or BF16
     * @param streaming the sink tokens and window every sequence keeps; null to keep every token
     */
    public ServingSimulation(ServeConfig config, KvFormat cacheFormat, StreamingPolicy streaming) {
        this.streaming = streaming;
        this.config = config;
        this.rnd = new SplittableRandom(config.seed());
        // FP8 pools take their scale from the rows' bound over the format's largest value, as vLLM's computed k_scale
        // does: the inputs lie in (-1, 1) (below), sqrt(2) after RoPE turns a pair. With a scale of 1, rows that small
        // would leave E4M3 mostly subnormal codes, which decode on the slower path.
        float[] fp8Scale = cacheFormat == KvFormat.FP8_E4M3 || cacheFormat == KvFormat.FP8_E5M2
                ? new float[] {(float) Math.sqrt(2) / cacheFormat.code().max()}
                : null;
        this.cache = PagedKvCache.create(
                cacheFormat,
                fp8Scale,
                fp8Scale,
                config.blocks(),
                config.blockSize(),
                config.kvHeads(),
                config.headDim(),
                config.headDim());
        this.rope = Rope.of(config.headDim(), config.longestSequence() + 1, 10000, Rope.Style.NEOX);
        int rows = Math.max(Math.max(config.systemPrompt(), config.maxPrompt()), config.maxBatch());
        // Decode appends take one row per request: batch entries of the key buffer, one row each.
        this.keys = random(Math.max(1, config.maxBatch()), config.kvHeads(), rows);
        this.values = random(Math.max(1, config.maxBatch()), config.kvHeads(), rows);
        this.queries = random(config.maxBatch(), config.queryHeads(), Math.max(config.maxPrompt(), 1));
        this.bytesPerToken = 2L * config.kvHeads() * config.headDim() * cacheFormat.bytesPerElement();
    }

    private Tensor random(int batch, int heads, int rows) {
        Tensor t = Tensor.allocate(config.dtype(), batch, heads, rows, config.headDim());
        float[] row = new float[config.headDim()];
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                for (int s = 0; s < rows; s++) {
                    for (int x = 0; x < row.length; x++) {
                        row[x] = (float) (rnd.nextDouble() * 2 - 1);
                    }
                    t.writeRow(b, h, s, row, 0);
                }
            }
        }
        return t;
    }

    /** Runs the whole workload and reports what it measured. */
    public ServeReport run() {
        int system = -1;
        if (config.systemPrompt() > 0) {
            system = newSequence();
            for (int at = 0; at < config.systemPrompt(); at += chunk(config.systemPrompt() - at)) {
                int n = chunk(config.systemPrompt() - at);
                cache.append(system, keys.sequence(0, at, n), values.sequence(0, at, n), rope);
            }
        }
        Deque<Request> waiting = new ArrayDeque<>();
        List<Request> running = new ArrayList<>();
        List<Long> stepNanos = new ArrayList<>();
        int arrived = 0;
        int completed = 0;
        int preemptions = 0;
        long promptTokens = config.systemPrompt();
        long generated = 0;
        long batchSum = 0;
        long peakPaged = cache.usage().bytesUsed();
        long peakContiguous = 0;
        long start = System.nanoTime();
        while (completed < config.requests()) {
            long stepStart = System.nanoTime();
            for (int n = poisson(config.arrivalsPerStep()); n > 0 && arrived < config.requests(); n--, arrived++) {
                waiting.add(new Request(
                        uniform(config.minPrompt(), config.maxPrompt()),
                        uniform(config.minOutput(), config.maxOutput())));
            }
            if (running.isEmpty() && waiting.isEmpty() && arrived < config.requests()) {
                continue; // an idle step: nothing arrived yet
            }
            // Admit while a request's prompt and its first decoded token fit.
            while (!waiting.isEmpty() && running.size() < config.maxBatch()) {
                Request r = waiting.peek();
                int seq = system >= 0 ? cache.fork(system) : newSequence();
                if (cache.blocksNeeded(seq, r.prompt + 1) > cache.usage().freeBlocks()) {
                    cache.free(seq);
                    break;
                }
                waiting.poll();
                r.seq = seq;
                prefill(r);
                promptTokens += r.prompt;
                running.add(r);
            }
            // One decode token for every running request; preempt the newest until the step fits.
            while (!running.isEmpty()) {
                try {
                    decode(running);
                    break;
                } catch (KvCacheFullException full) {
                    Request victim = running.removeLast();
                    cache.free(victim.seq);
                    victim.seq = -1;
                    victim.generated = 0;
                    waiting.addFirst(victim);
                    preemptions++;
                }
            }
            batchSum += running.size();
            generated += running.size();
            long contiguous = 0;
            for (Request r : running) {
                r.generated++;
                contiguous += (long) (config.systemPrompt() + r.prompt + r.output) * bytesPerToken;
            }
            peakPaged = Math.max(peakPaged, cache.usage().bytesUsed());
            peakContiguous = Math.max(peakContiguous, contiguous);
            for (int i = running.size() - 1; i >= 0; i--) {
                Request r = running.get(i);
                if (r.generated == r.output) {
                    cache.free(r.seq);
                    running.remove(i);
                    completed++;
                }
            }
            stepNanos.add(System.nanoTime() - stepStart);
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        long[] sorted = stepNanos.stream().mapToLong(Long::longValue).sorted().toArray();
        return new ServeReport(
                completed,
                sorted.length,
                promptTokens,
                generated,
                seconds,
                percentile(sorted, 0.50) / 1e6,
                percentile(sorted, 0.99) / 1e6,
                sorted.length == 0 ? 0 : (double) batchSum / sorted.length,
                preemptions,
                peakPaged,
                peakContiguous,
                cache.usage().bytesTotal());
    }

    /**
     * Appends the request's prompt after the shared prefix and attends with its queries (causal, bottom-right); under
     * a streaming policy in chunks of at most its window.
     */
    private void prefill(Request r) {
        for (int at = 0; at < r.prompt; at += chunk(r.prompt - at)) {
            int n = chunk(r.prompt - at);
            cache.append(r.seq, keys.sequence(0, at, n), values.sequence(0, at, n), rope);
            Tensor q = queries.sequence(0, at, n);
            cache.attentionInto(new int[] {r.seq}, q, out(1, n), null, causal);
        }
    }

    private int newSequence() {
        return streaming == null ? cache.newSequence() : cache.newSequence(streaming);
    }

    /** Tokens of the next prefill chunk: all that are left, or at most the streaming window. */
    private int chunk(int left) {
        return streaming == null ? left : Math.min(left, streaming.window());
    }

    /** One token for each running request: a batched append, then one paged-attention call for the batch. */
    private void decode(List<Request> running) {
        int n = running.size();
        int[] seqs = new int[n];
        for (int i = 0; i < n; i++) {
            seqs[i] = running.get(i).seq;
        }
        Tensor k = rows(keys, n);
        Tensor v = rows(values, n);
        cache.append(seqs, k, v, rope);
        cache.attentionInto(seqs, rows(queries, n), out(n, 1), null, causal);
    }

    /** Row 0 of the first {@code n} batch entries: {@code [n, heads, 1, D]}. */
    private static Tensor rows(Tensor t, int n) {
        long[] strides = t.strides();
        return Tensor.of(t.memory(), t.dtype(), new long[] {n, t.heads(), 1, t.headDim()}, strides);
    }

    private Tensor out(int batch, int rows) {
        return Tensor.allocate(DType.F32, batch, config.queryHeads(), rows, config.headDim());
    }

    private int uniform(int min, int max) {
        return min + rnd.nextInt(max - min + 1);
    }

    /** Knuth's method; fine for the small means a step sees. */
    private int poisson(double mean) {
        double limit = Math.exp(-mean);
        double product = rnd.nextDouble();
        int n = 0;
        while (product > limit) {
            n++;
            product *= rnd.nextDouble();
        }
        return n;
    }

    private static double percentile(long[] sorted, double p) {
        if (sorted.length == 0) {
            return 0;
        }
        return sorted[Math.min(sorted.length - 1, (int) Math.ceil(p * sorted.length) - 1)];
    }

    @Override
    public String toString() {
        return "ServingSimulation[" + config + "]";
    }
}
