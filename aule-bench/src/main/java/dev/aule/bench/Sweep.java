package dev.aule.bench;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** Times prepared contenders in the calling JVM, for {@code aule bench}. */
public final class Sweep {
    private Sweep() {}

    /**
     * Times several contenders on one shape, interleaved so that on a shared machine they all see
     * the same background load: each is warmed up (at least {@code warmupCalls} calls and
     * {@code warmupSeconds}, so the JIT has compiled it), then {@code runs} passes each call every
     * contender once. Reports each one's median and its mean Java-heap allocation per call.
     */
    public static List<ContenderTiming> measure(
            BenchShape shape,
            Map<String, PreparedAttention> contenders,
            int warmupCalls,
            double warmupSeconds,
            int runs) {
        List<String> names = List.copyOf(contenders.keySet());
        Stopwatch stopwatch = new Stopwatch(new Stopwatch.Warmup(warmupCalls, warmupSeconds), runs);
        List<Runnable> calls =
                names.stream().<Runnable>map(n -> contenders.get(n)::run).toList();
        List<Stopwatch.Samples> samples = stopwatch.time(calls);
        List<ContenderTiming> results = new ArrayList<>();
        for (int c = 0; c < names.size(); c++) {
            Stopwatch.Samples s = samples.get(c);
            results.add(new ContenderTiming(shape, names.get(c), s.medianSeconds(), s.allocatedBytesPerCall()));
        }
        return results;
    }
}
