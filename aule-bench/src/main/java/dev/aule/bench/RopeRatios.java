package dev.aule.bench;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.Tensor;
import dev.aule.serving.Rope;
import dev.aule.spi.AttentionBackend;

import java.util.List;
import java.util.Locale;

/**
 * The ratio {@link RopeBenchmark} is about, measured so a shared machine's noise hurts less: the
 * causal forward, the rotate pass over q and k and its backward over dq and dk run in turn, pass
 * after pass, in one JVM ({@link Stopwatch}); each keeps its median and its best. A check of the
 * ratio, not a replacement for JMH.
 *
 * <p>{@code java --add-modules jdk.incubator.vector -cp ... dev.aule.bench.RopeRatios [seq] [passes]}
 */
public final class RopeRatios {
    private RopeRatios() {}

    public static void main(String[] args) {
        int seq = args.length > 0 ? Integer.parseInt(args[0]) : 2048;
        int passes = args.length > 1 ? Integer.parseInt(args[1]) : 15;
        int heads = RopeBenchmark.HEADS;
        AttentionBackend cpu = Backends.get("cpu");
        AttentionOptions causal = AttentionOptions.builder().causal(true).build();
        System.out.printf(
                Locale.ROOT, "S = %d, B = 1, H = %d, F32, causal forward on cpu; %d passes%n", seq, heads, passes);
        for (int headDim : new int[] {64, 128}) {
            Tensor q = Inputs.random(1, 1, heads, seq, headDim);
            Tensor k = Inputs.random(2, 1, heads, seq, headDim);
            Tensor v = Inputs.random(3, 1, heads, seq, headDim);
            Tensor out = Inputs.zeros(1, heads, seq, headDim);
            Rope rope = Rope.of(headDim, seq, 10000, Rope.Style.NEOX);
            List<Runnable> ops = List.of(
                    () -> cpu.forward(q, k, v, out, null, causal),
                    () -> {
                        rope.apply(q, 0);
                        rope.apply(k, 0);
                    },
                    () -> {
                        rope.applyBackward(q, 0);
                        rope.applyBackward(k, 0);
                    });
            List<Stopwatch.Samples> t = new Stopwatch(Stopwatch.Warmup.seconds(2), passes, 2e8).time(ops);
            double attention = t.get(0).medianNanos() / 1e6;
            double rotate = t.get(1).medianNanos() / 1e6;
            double back = t.get(2).medianNanos() / 1e6;
            System.out.printf(
                    Locale.ROOT,
                    "D = %3d  attention %8.2f ms (best %8.2f)  rotate q,k %6.3f ms (best %6.3f)  dq,dk %6.3f ms"
                            + "  rotate / attention %.2f %% (best / best %.2f %%)%n",
                    headDim,
                    attention,
                    t.get(0).bestNanos() / 1e6,
                    rotate,
                    t.get(1).bestNanos() / 1e6,
                    back,
                    100 * rotate / attention,
                    100 * t.get(1).bestNanos() / t.get(0).bestNanos());
        }
    }
}
