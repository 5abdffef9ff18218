package dev.aule.bench;

import java.lang.reflect.Method;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * The same decode steps timed on two builds of aule-core in one JVM, interleaved, so a before/after
 * comparison of a kernel change holds on a shared machine where separate JMH runs swing by more than
 * the change: each build's jar gets its own class loader (its own classes, pool and scratch), both
 * read the same input arrays, and per shape the two run in turn, pass after pass, after two seconds
 * of warm-up each (and six on a small shape first, while the kernels get compiled); a sample repeats the step for at least 50 ms. Reports each build's median and the
 * median of the per-pass ratios (second build's time over the first's).
 *
 * <p>The steps: one query per sequence, GQA 32:8, D = 128, F32, causal, {@code batch} sequences of
 * {@code context} keys, through the batched {@code forward} and through {@code forwardCached} with
 * every sequence at full length (the serving path, one sequence per view).
 *
 * <p>{@code java --add-modules jdk.incubator.vector -Xmx8g -cp aule-bench.jar dev.aule.bench.BuildRatios
 * <first aule-core.jar> <second aule-core.jar> [contexts] [batches] [passes]}, lists comma-separated;
 * defaults {@code 1024,2048,4096,8192}, {@code 1,8} and 15.
 */
public final class BuildRatios {
    private static final double WARMUP_SECONDS = 2;
    // The kernels start interpreted, where one step takes a hundred times longer: a first warm-up on a small
    // shape lets them get compiled before any shape's own warm-up counts.
    private static final double FIRST_WARMUP_SECONDS = 6;
    private static final double SAMPLE_NANOS = 50e6;
    private static final String[] PATHS = {"forward", "cached"};

    private BuildRatios() {}

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            throw new IllegalArgumentException(
                    "arguments: <first aule-core.jar> <second aule-core.jar> [contexts] [batches] [passes]");
        }
        Build first = new Build(Path.of(args[0]));
        Build second = new Build(Path.of(args[1]));
        int[] contexts = ints(args.length > 2 ? args[2] : "1024,2048,4096,8192");
        int[] batches = ints(args.length > 3 ? args[3] : "1,8");
        int passes = args.length > 4 ? Integer.parseInt(args[4]) : 15;
        if (passes < 1) {
            throw new IllegalArgumentException("passes (5th argument): must be >= 1, got " + passes);
        }
        System.out.printf(
                Locale.ROOT,
                "decode step: one query per sequence, GQA 32:8, D = 128, F32, causal; median of %d interleaved"
                        + " passes%nfirst  %s%nsecond %s%n%n%-8s %5s %7s %12s %12s %14s%n",
                passes,
                args[0],
                args[1],
                "path",
                "batch",
                "context",
                "first ms",
                "second ms",
                "second/first");
        float[][] small = inputs(1, 1024);
        for (String path : PATHS) {
            for (Build build : new Build[] {first, second}) {
                warmUp(build.step(path, 1, 1024, small), FIRST_WARMUP_SECONDS);
            }
        }
        for (int batch : batches) {
            for (int context : contexts) {
                float[][] data = inputs(batch, context);
                for (String path : PATHS) {
                    Runnable a = first.step(path, batch, context, data);
                    Runnable b = second.step(path, batch, context, data);
                    warmUp(a, WARMUP_SECONDS);
                    warmUp(b, WARMUP_SECONDS);
                    double[] ta = new double[passes];
                    double[] tb = new double[passes];
                    double[] ratio = new double[passes];
                    for (int p = 0; p < passes; p++) {
                        ta[p] = sample(a);
                        tb[p] = sample(b);
                        ratio[p] = tb[p] / ta[p];
                    }
                    System.out.printf(
                            Locale.ROOT,
                            "%-8s %5d %7d %12.3f %12.3f %14.3f%n",
                            path,
                            batch,
                            context,
                            median(ta) / 1e6,
                            median(tb) / 1e6,
                            median(ratio));
                }
            }
        }
    }

    /** q, k, v of {@code batch} sequences, BHSD, seeded as {@link Inputs} seeds them. */
    private static float[][] inputs(int batch, int context) {
        int d = DecodeBenchmark.HEAD_DIM;
        return new float[][] {
            random(1, (long) batch * DecodeBenchmark.Q_HEADS * d),
            random(2, (long) batch * DecodeBenchmark.KV_HEADS * context * d),
            random(3, (long) batch * DecodeBenchmark.KV_HEADS * context * d)
        };
    }

    private static float[] random(long seed, long n) {
        SplittableRandom rnd = new SplittableRandom(seed);
        float[] data = new float[Math.toIntExact(n)];
        for (int i = 0; i < data.length; i++) {
            data[i] = (float) (rnd.nextDouble() * 2 - 1);
        }
        return data;
    }

    private static void warmUp(Runnable step, double seconds) {
        long end = System.nanoTime() + (long) (seconds * 1e9);
        do {
            step.run();
        } while (System.nanoTime() < end);
    }

    /** Nanoseconds per step over a sample of at least {@link #SAMPLE_NANOS}. */
    private static double sample(Runnable step) {
        long start = System.nanoTime();
        long now;
        int runs = 0;
        do {
            step.run();
            runs++;
            now = System.nanoTime();
        } while (now - start < SAMPLE_NANOS);
        return (double) (now - start) / runs;
    }

    private static double median(double[] values) {
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        int n = sorted.length;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }

    private static int[] ints(String list) {
        return Arrays.stream(list.split(",")).mapToInt(Integer::parseInt).toArray();
    }

    /** One build of aule-core in its own class loader, called through its public API by reflection. */
    private static final class Build {
        private final Class<?> tensor;
        private final Method tensorOf;
        private final Object backend;
        private final Object options;

        Build(Path jar) throws Exception {
            URL[] urls = {jar.toUri().toURL()};
            ClassLoader loader = new URLClassLoader(urls, ClassLoader.getPlatformClassLoader());
            tensor = loader.loadClass("dev.aule.Tensor");
            tensorOf = tensor.getMethod("of", float[].class, int.class, int.class, int.class, int.class);
            backend =
                    loader.loadClass("dev.aule.cpu.CpuBackend").getConstructor().newInstance();
            Class<?> optionsClass = loader.loadClass("dev.aule.AttentionOptions");
            Object builder = optionsClass.getMethod("builder").invoke(null);
            builder.getClass().getMethod("causal", boolean.class).invoke(builder, true);
            options = builder.getClass().getMethod("build").invoke(builder);
        }

        /** The step of {@code path} over {@code data} (q, k, v) with a fresh output. */
        Runnable step(String path, int batch, int context, float[][] data) throws Exception {
            int d = DecodeBenchmark.HEAD_DIM;
            int qHeads = DecodeBenchmark.Q_HEADS;
            int kvHeads = DecodeBenchmark.KV_HEADS;
            Object q = tensorOf.invoke(null, data[0], batch, qHeads, 1, d);
            Object k = tensorOf.invoke(null, data[1], batch, kvHeads, context, d);
            Object v = tensorOf.invoke(null, data[2], batch, kvHeads, context, d);
            Object out = tensorOf.invoke(null, new float[batch * qHeads * d], batch, qHeads, 1, d);
            Class<?> optionsClass = options.getClass();
            Class<?> backendClass = backend.getClass();
            if (path.equals("forward")) {
                Method forward =
                        backendClass.getMethod("forward", tensor, tensor, tensor, tensor, tensor, optionsClass);
                return () -> call(forward, q, k, v, out, null, options);
            }
            Method cached = backendClass.getMethod(
                    "forwardCached", tensor, tensor, tensor, int[].class, tensor, tensor, optionsClass);
            int[] lens = new int[batch];
            Arrays.fill(lens, context);
            return () -> call(cached, q, k, v, lens, out, null, options);
        }

        private void call(Method method, Object... args) {
            try {
                method.invoke(backend, args);
            } catch (ReflectiveOperationException e) {
                throw new IllegalStateException(method.getName() + " failed", e);
            }
        }
    }
}
