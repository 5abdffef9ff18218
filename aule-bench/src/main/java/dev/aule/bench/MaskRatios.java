package dev.aule.bench;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.Tensor;
import dev.aule.spi.AttentionBackend;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The ratios {@link MaskBenchmark} is about, measured so a shared machine's noise hurts less: the four
 * configurations run in turn, pass after pass, in one JVM, and each keeps its fastest time. Other
 * processes slow every configuration alike within a pass, and the best of many passes is the time
 * the machine gave when it was least disturbed. A check of the ratios, not a replacement for JMH.
 *
 * <p>{@code java --add-modules jdk.incubator.vector -cp ... dev.aule.bench.MaskRatios [seq] [passes]}
 */
public final class MaskRatios {
    private static final String[] MASKS = {"none", "document8", "causal", "causalMaskMod"};

    private MaskRatios() {}

    public static void main(String[] args) {
        int seq = args.length > 0 ? Integer.parseInt(args[0]) : 8192;
        int passes = args.length > 1 ? Integer.parseInt(args[1]) : 8;
        int headDim = 64;
        AttentionBackend cpu = Backends.get("cpu");
        Tensor q = Inputs.random(1, MaskBenchmark.BATCH, MaskBenchmark.HEADS, seq, headDim);
        Tensor k = Inputs.random(2, MaskBenchmark.BATCH, MaskBenchmark.HEADS, seq, headDim);
        Tensor v = Inputs.random(3, MaskBenchmark.BATCH, MaskBenchmark.HEADS, seq, headDim);
        Tensor out = Inputs.zeros(MaskBenchmark.BATCH, MaskBenchmark.HEADS, seq, headDim);
        AttentionOptions[] options = new AttentionOptions[MASKS.length];
        for (int c = 0; c < MASKS.length; c++) {
            long start = System.nanoTime();
            options[c] = MaskBenchmark.options(MASKS[c], seq);
            System.out.printf(
                    Locale.ROOT, "%-14s options built in %.0f ms%n", MASKS[c], (System.nanoTime() - start) / 1e6);
        }
        List<Runnable> forwards = new ArrayList<>();
        for (AttentionOptions o : options) {
            forwards.add(() -> cpu.forward(q, k, v, out, null, o));
        }
        // One warm-up call each, then the passes; the best of each configuration, in ms.
        List<Stopwatch.Samples> samples = new Stopwatch(Stopwatch.Warmup.calls(1), passes).time(forwards);
        double[] best = samples.stream().mapToDouble(t -> t.bestNanos() / 1e6).toArray();
        System.out.printf(
                Locale.ROOT,
                "%nS = %d, D = %d, B = %d, H = %d, best of %d passes%n",
                seq,
                headDim,
                MaskBenchmark.BATCH,
                MaskBenchmark.HEADS,
                passes);
        for (int c = 0; c < MASKS.length; c++) {
            double gflops = MaskBenchmark.flops(MASKS[c], seq, headDim) / (best[c] * 1e-3) / 1e9;
            System.out.printf(Locale.ROOT, "%-14s %9.1f ms %8.1f GFLOP/s%n", MASKS[c], best[c], gflops);
        }
        System.out.printf(Locale.ROOT, "none / document8        = %.2f (target >= 5)%n", best[0] / best[1]);
        System.out.printf(Locale.ROOT, "causalMaskMod / causal  = %.3f (target <= 1.15)%n", best[3] / best[2]);
    }
}
