package dev.aule.bench;

import dev.aule.AttentionOptions;
import dev.aule.AttentionResult;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.serving.PagedKvCache;
import dev.aule.serving.SparseBudget;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Query-aware sparse decode against exact decode, per context: how much of the exact attention mass the chosen
 * blocks hold, how far the output is from exact attention, and the step's speed-up, with the approximation of
 * the system we re-create (the top keys by L2 norm, whatever the query) measured beside it.
 *
 * <p>One sequence in a paged F32 cache of 16-token blocks, GQA 32:8, D = 128, causal decode (one query); a budget
 * of 2048 tokens per query head (2 recent blocks and 126 chosen by their key summaries; the L2-norm choice takes
 * the 2048 keys of largest norm per KV head). Three workloads: {@code random} (Gaussian keys, values and query: no
 * structure, the worst case for any selection) and {@code retrieval} (the same, plus per KV head 8 runs of 8
 * consecutive keys carrying 10 times a unit direction that the query also carries 10 times, at the norm of any
 * other key: a few keys hold most of the mass, as in long-context retrieval, and their length does not give them
 * away), and {@code loud} (the same needles added to random keys, so they are also longer than the others, as
 * keys that stand out in a few large channels are). The mass share and the errors are in float64 over every query head
 * (mean and worst head); the errors compare the library's sparse output with the float64 exact output. The steps
 * are timed interleaved ({@link Stopwatch}: 2 s warm-up each, samples of at least 50 ms, the median of the passes).
 * {@code read} is the mean number of keys a query head reads: the query heads of a KV head share one pass over
 * its keys, so each reads its group's choices (between one budget and four); Quest's mass and error are over
 * those keys, the L2-norm choice's over its 2048.
 *
 * <p>{@code java --add-modules jdk.incubator.vector -Xmx8g -cp ... dev.aule.bench.SparseDecodeReport [contexts]
 * [passes]}; defaults {@code 8192,16384,32768,65536,131072} and 7.
 */
public final class SparseDecodeReport {
    private static final int Q_HEADS = 32;
    private static final int KV_HEADS = 8;
    private static final int D = 128;
    private static final int BLOCK = 16;
    private static final int BUDGET_TOKENS = 2048;
    private static final int RECENT_BLOCKS = 2;
    private static final AttentionOptions CAUSAL =
            AttentionOptions.builder().causal(true).build();

    private SparseDecodeReport() {}

    public static void main(String[] args) {
        int[] contexts = Arrays.stream((args.length > 0 ? args[0] : "8192,16384,32768,65536,131072").split(","))
                .mapToInt(s -> Integer.parseInt(s.trim()))
                .toArray();
        int passes = args.length > 1 ? Integer.parseInt(args[1]) : 7;
        SparseBudget budget = SparseBudget.ofTokens(BUDGET_TOKENS, BLOCK, RECENT_BLOCKS);
        System.out.printf(
                Locale.ROOT,
                "sparse decode: B = 1, GQA %d:%d, D = %d, F32 paged cache of %d-token blocks, budget %d tokens per"
                        + " query head (%d recent + %d chosen blocks); mass share and errors over the %d query heads"
                        + " (mean / worst); median of %d interleaved passes%n%n",
                Q_HEADS,
                KV_HEADS,
                D,
                BLOCK,
                BUDGET_TOKENS,
                RECENT_BLOCKS,
                budget.topBlocks(),
                Q_HEADS,
                passes);
        System.out.printf(
                Locale.ROOT,
                "%-9s %7s | %6s %-21s %-19s | %-21s %-19s | %8s %8s %7s%n",
                "workload",
                "context",
                "read",
                "Quest mass mean/min",
                "rel L2 err mean/max",
                "L2-norm mass mean/min",
                "rel L2 err mean/max",
                "exact ms",
                "sparse ms",
                "speed-up");
        for (int context : contexts) {
            for (String workload : new String[] {"random", "retrieval", "loud"}) {
                measure(workload, context, budget, passes);
                System.gc();
            }
        }
    }

    private static void measure(String workload, int context, SparseBudget budget, int passes) {
        SplittableRandom rnd = new SplittableRandom(context * 31L + workload.hashCode());
        PagedKvCache cache = PagedKvCache.create(DType.F32, PagedKvCache.blocksFor(context, BLOCK), BLOCK, KV_HEADS, D);
        cache.enableKeySummaries();
        int seq = cache.newSequence();
        float[][] direction = new float[KV_HEADS][D];
        for (float[] u : direction) {
            double norm = 0;
            for (int d = 0; d < D; d++) {
                u[d] = (float) rnd.nextGaussian();
                norm += u[d] * u[d];
            }
            for (int d = 0; d < D; d++) {
                u[d] /= (float) Math.sqrt(norm);
            }
        }
        boolean retrieval = !workload.equals("random");
        boolean loud = workload.equals("loud");
        int[] needles = new int[8];
        for (int i = 0; i < needles.length; i++) {
            needles[i] = rnd.nextInt(context - 8 - BLOCK * RECENT_BLOCKS);
        }
        int chunk = 1024;
        for (int done = 0; done < context; done += chunk) {
            int n = Math.min(chunk, context - done);
            Tensor k = gaussian(rnd, KV_HEADS, n);
            if (retrieval) {
                for (int start : needles) {
                    for (int j = Math.max(start, done); j < Math.min(start + 8, done + n); j++) {
                        for (int h = 0; h < KV_HEADS; h++) {
                            plant(k, h, j - done, direction[h], loud);
                        }
                    }
                }
            }
            cache.append(seq, k, gaussian(rnd, KV_HEADS, n));
        }
        Tensor q = gaussian(rnd, Q_HEADS, 1);
        if (retrieval) {
            for (int h = 0; h < Q_HEADS; h++) {
                for (int d = 0; d < D; d++) {
                    q.set(0, h, 0, d, q.get(0, h, 0, d) + 10 * direction[h / (Q_HEADS / KV_HEADS)][d]);
                }
            }
        }
        int[] seqs = {seq};
        AttentionResult sparse = cache.sparseAttention(seqs, q, budget, CAUSAL);
        int[][] questBlocks = cache.sparseBlocks(seq, q, budget);
        Exact exact = new Exact(cache, seq, q);
        Share quest = new Share();
        Share byNorm = new Share();
        int[][] normKeys = exact.largestNorms(budget.blocks() * BLOCK);
        int group = Q_HEADS / KV_HEADS;
        long tokensRead = 0;
        for (int h = 0; h < Q_HEADS; h++) {
            // What head h reads: its group's choices (they share one pass over the KV head's keys).
            java.util.TreeSet<Integer> union = new java.util.TreeSet<>();
            for (int sibling = h / group * group; sibling < (h / group + 1) * group; sibling++) {
                Arrays.stream(questBlocks[sibling]).forEach(union::add);
            }
            int[] keys = blockKeys(union.stream().mapToInt(Integer::intValue).toArray(), context);
            tokensRead += keys.length;
            float[] out = new float[D];
            sparse.out().readRow(0, h, 0, out, 0);
            quest.add(exact.mass(h, keys), exact.relativeError(h, out));
            int[] mine = normKeys[h / group];
            byNorm.add(exact.mass(h, mine), exact.relativeError(h, exact.outputOver(h, mine)));
        }
        Stopwatch stopwatch = new Stopwatch(Stopwatch.Warmup.seconds(2), passes, 50e6);
        List<Stopwatch.Samples> samples = stopwatch.time(
                List.of(() -> cache.attention(seqs, q, CAUSAL), () -> cache.sparseAttention(seqs, q, budget, CAUSAL)));
        double exactMs = samples.get(0).medianNanos() / 1e6;
        double sparseMs = samples.get(1).medianNanos() / 1e6;
        System.out.printf(
                Locale.ROOT,
                "%-9s %7d | %6d %9.4f / %-9.4f %8.2e / %-8.2e | %9.4f / %-9.4f %8.2e / %-8.2e | %8.2f %8.2f %6.1fx%n",
                workload,
                context,
                tokensRead / Q_HEADS,
                quest.meanMass(),
                quest.minMass,
                quest.meanError(),
                quest.maxError,
                byNorm.meanMass(),
                byNorm.minMass,
                byNorm.meanError(),
                byNorm.maxError,
                exactMs,
                sparseMs,
                exactMs / sparseMs);
    }

    /**
     * Makes key row {@code (h, j)} of {@code k} a needle: 10 along the unit {@code u}, and the rest of the row, made
     * orthogonal to {@code u}, scaled so the row keeps the norm of a typical key ({@code sqrt(D)}). A needle is then
     * found by its direction, not its length, which a query-independent choice cannot see. {@code loud}: 10 along
     * {@code u} is added to the random row instead, so the needle is also longer than other keys.
     */
    private static void plant(Tensor k, int h, int j, float[] u, boolean loud) {
        if (loud) {
            for (int d = 0; d < D; d++) {
                k.set(0, h, j, d, k.get(0, h, j, d) + 10 * u[d]);
            }
            return;
        }
        double along = 0;
        for (int d = 0; d < D; d++) {
            along += k.get(0, h, j, d) * u[d];
        }
        double rest = 0;
        float[] w = new float[D];
        for (int d = 0; d < D; d++) {
            w[d] = (float) (k.get(0, h, j, d) - along * u[d]);
            rest += w[d] * w[d];
        }
        double scale = Math.sqrt((D - 100.0) / rest);
        for (int d = 0; d < D; d++) {
            k.set(0, h, j, d, (float) (10 * u[d] + scale * w[d]));
        }
    }

    /** The key positions of the given logical blocks. */
    private static int[] blockKeys(int[] blocks, int context) {
        List<Integer> keys = new ArrayList<>();
        for (int b : blocks) {
            for (int j = b * BLOCK; j < Math.min(context, (b + 1) * BLOCK); j++) {
                keys.add(j);
            }
        }
        return keys.stream().mapToInt(Integer::intValue).toArray();
    }

    private static Tensor gaussian(SplittableRandom rnd, int heads, int rows) {
        float[] data = new float[heads * rows * D];
        for (int i = 0; i < data.length; i++) {
            data[i] = (float) rnd.nextGaussian();
        }
        return Tensor.of(data, 1, heads, rows, D);
    }

    /** Mass shares and errors over the query heads. */
    private static final class Share {
        double massSum;
        double minMass = Double.POSITIVE_INFINITY;
        double errorSum;
        double maxError;
        int count;

        void add(double mass, double error) {
            massSum += mass;
            minMass = Math.min(minMass, mass);
            errorSum += error;
            maxError = Math.max(maxError, error);
            count++;
        }

        double meanMass() {
            return massSum / count;
        }

        double meanError() {
            return errorSum / count;
        }
    }

    /** Exact attention of one decode query over the whole sequence, in float64. */
    private static final class Exact {
        private final float[][] keys; // [Hkv][context * D]
        private final float[][] values;
        private final double[][] probabilities; // [Hq][context]
        private final double[][] outputs; // [Hq][D]
        private final int context;

        Exact(PagedKvCache cache, int seq, Tensor q) {
            context = cache.length(seq);
            int[] table = cache.blockTable(seq);
            keys = new float[KV_HEADS][context * D];
            values = new float[KV_HEADS][context * D];
            for (int h = 0; h < KV_HEADS; h++) {
                for (int j = 0; j < context; j++) {
                    cache.keyBlocks().readRow(table[j / BLOCK], h, j % BLOCK, keys[h], j * D);
                    cache.valueBlocks().readRow(table[j / BLOCK], h, j % BLOCK, values[h], j * D);
                }
            }
            double scale = 1 / Math.sqrt(D);
            probabilities = new double[Q_HEADS][context];
            outputs = new double[Q_HEADS][D];
            for (int h = 0; h < Q_HEADS; h++) {
                float[] qh = new float[D];
                q.readRow(0, h, 0, qh, 0);
                float[] k = keys[h / (Q_HEADS / KV_HEADS)];
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j < context; j++) {
                    double s = 0;
                    for (int d = 0; d < D; d++) {
                        s += (double) qh[d] * k[j * D + d];
                    }
                    probabilities[h][j] = s * scale;
                    max = Math.max(max, s * scale);
                }
                double sum = 0;
                for (int j = 0; j < context; j++) {
                    probabilities[h][j] = Math.exp(probabilities[h][j] - max);
                    sum += probabilities[h][j];
                }
                for (int j = 0; j < context; j++) {
                    probabilities[h][j] /= sum;
                }
                outputs[h] = weighted(h, probabilities[h], null);
            }
        }

        /** The exact attention mass of query head {@code h} on {@code chosen} keys. */
        double mass(int h, int[] chosen) {
            double m = 0;
            for (int j : chosen) {
                m += probabilities[h][j];
            }
            return m;
        }

        /** Attention of head {@code h} renormalised over {@code chosen} keys, in float64. */
        float[] outputOver(int h, int[] chosen) {
            double[] p = new double[context];
            double m = mass(h, chosen);
            for (int j : chosen) {
                p[j] = probabilities[h][j] / m;
            }
            double[] o = weighted(h, p, chosen);
            float[] out = new float[D];
            for (int d = 0; d < D; d++) {
                out[d] = (float) o[d];
            }
            return out;
        }

        private double[] weighted(int h, double[] p, int[] only) {
            float[] v = values[h / (Q_HEADS / KV_HEADS)];
            double[] o = new double[D];
            int n = only == null ? context : only.length;
            for (int i = 0; i < n; i++) {
                int j = only == null ? i : only[i];
                for (int d = 0; d < D; d++) {
                    o[d] += p[j] * v[j * D + d];
                }
            }
            return o;
        }

        /** {@code ||out - exact|| / ||exact||} for head {@code h}. */
        double relativeError(int h, float[] out) {
            double diff = 0;
            double norm = 0;
            for (int d = 0; d < D; d++) {
                double e = out[d] - outputs[h][d];
                diff += e * e;
                norm += outputs[h][d] * outputs[h][d];
            }
            return Math.sqrt(diff / norm);
        }

        /** Per KV head, the {@code count} keys of largest L2 norm (the query-independent choice). */
        int[][] largestNorms(long count) {
            int n = (int) Math.min(count, context);
            int[][] chosen = new int[KV_HEADS][];
            for (int h = 0; h < KV_HEADS; h++) {
                Integer[] order = new Integer[context];
                double[] norms = new double[context];
                for (int j = 0; j < context; j++) {
                    order[j] = j;
                    double s = 0;
                    for (int d = 0; d < D; d++) {
                        s += (double) keys[h][j * D + d] * keys[h][j * D + d];
                    }
                    norms[j] = s;
                }
                Arrays.sort(order, (a, b) -> Double.compare(norms[b], norms[a]));
                chosen[h] = new int[n];
                for (int i = 0; i < n; i++) {
                    chosen[h][i] = order[i];
                }
            }
            return chosen;
        }
    }
}
