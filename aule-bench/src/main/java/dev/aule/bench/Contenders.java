package dev.aule.bench;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.Tensor;
import dev.aule.spi.AttentionBackend;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;

/**
 * What a sweep can time: every available backend but the float64 reference (by its name: cpu,
 * vulkan...) and the peers {@value #NAIVE} (the Java engines' naive attention) and
 * {@value #ONNXRUNTIME} (ONNX Runtime's CPU attention). Every contender except cpu is checked
 * equal to the cpu backend on the same inputs before it is handed out for timing.
 */
public final class Contenders {
    public static final String NAIVE = "naive";
    public static final String ONNXRUNTIME = "onnxruntime";
    private static final String REFERENCE = "reference";

    private Contenders() {}

    /** Names a sweep accepts: available backends (not the reference), then the peers. */
    public static List<String> known() {
        List<String> names = new ArrayList<>();
        for (AttentionBackend backend : Backends.available()) {
            if (!backend.name().equals(REFERENCE)) {
                names.add(backend.name());
            }
        }
        names.add(NAIVE);
        names.add(ONNXRUNTIME);
        return List.copyOf(names);
    }

    /** Why {@code name} cannot run {@code shape} in this JVM, or empty when it can. */
    public static Optional<String> unfit(String name, BenchShape shape) {
        if (name.equals(NAIVE)) {
            // One S x S score matrix per head being computed at once, beside inputs and outputs.
            long scores = (long) shape.seq() * shape.seq() * Float.BYTES;
            long live = scores * Math.min(shape.heads(), Runtime.getRuntime().availableProcessors() + 1);
            long need = live + shape.ioBytes() * 2;
            if ((long) shape.seq() * shape.seq() > Integer.MAX_VALUE - 8
                    || need > Runtime.getRuntime().maxMemory() * 3 / 4) {
                return Optional.of(String.format(Locale.ROOT, "needs %.1f GiB of score matrices", live / 1073741824.0));
            }
        }
        return Optional.empty();
    }

    /**
     * The contender ready to time on random inputs of {@code shape}.
     *
     * @throws IllegalArgumentException for a name not in {@link #known()} or a shape it cannot run
     * @throws IllegalStateException    when its output differs from the cpu backend's
     */
    public static PreparedAttention prepare(String name, BenchShape shape) {
        if (!known().contains(name)) {
            throw new IllegalArgumentException("contender: no '" + name + "', known: " + String.join(", ", known()));
        }
        unfit(name, shape).ifPresent(reason -> {
            throw new IllegalArgumentException("contender: " + name + " cannot run " + shape.label() + ": " + reason);
        });
        Tensor q = Inputs.random(1, 1, shape.heads(), shape.seq(), shape.headDim());
        Tensor k = Inputs.random(2, 1, shape.heads(), shape.seq(), shape.headDim());
        Tensor v = Inputs.random(3, 1, shape.heads(), shape.seq(), shape.headDim());
        PreparedAttention prepared = switch (name) {
            case NAIVE -> naive(q, k, v, shape);
            case ONNXRUNTIME -> onnxRuntime(q, k, v, shape);
            default -> backend(Backends.get(name), q, k, v, shape);
        };
        if (!name.equals("cpu")) {
            try {
                prepared.run();
                PeerCheck.requireEqual(name, lastOutput(prepared), PeerCheck.cpuOutput(q, k, v, shape.causal()));
            } catch (RuntimeException e) {
                prepared.close();
                throw e;
            }
        }
        return prepared;
    }

    /** Threads the cpu backend runs on, so peers get as many. */
    static int threads() {
        return Integer.getInteger("aule.cpu.threads", Runtime.getRuntime().availableProcessors());
    }

    private interface Checked extends PreparedAttention {
        float[] output();
    }

    private static float[] lastOutput(PreparedAttention prepared) {
        return ((Checked) prepared).output();
    }

    private static PreparedAttention backend(AttentionBackend backend, Tensor q, Tensor k, Tensor v, BenchShape shape) {
        AttentionOptions options =
                AttentionOptions.builder().causal(shape.causal()).build();
        Tensor out = Inputs.zeros(1, shape.heads(), shape.seq(), shape.headDim());
        return new Checked() {
            @Override
            public void run() {
                backend.forward(q, k, v, out, null, options);
            }

            @Override
            public float[] output() {
                return out.toFloatArray();
            }

            @Override
            public void close() {}
        };
    }

    private static PreparedAttention naive(Tensor tq, Tensor tk, Tensor tv, BenchShape shape) {
        float[] q = tq.toFloatArray();
        float[] k = tk.toFloatArray();
        float[] v = tv.toFloatArray();
        float[] out = new float[q.length];
        return new Checked() {
            @Override
            public void run() {
                NaiveAttention.forward(q, k, v, out, shape.heads(), shape.seq(), shape.headDim(), shape.causal());
            }

            @Override
            public float[] output() {
                return out;
            }

            @Override
            public void close() {}
        };
    }

    private static PreparedAttention onnxRuntime(Tensor q, Tensor k, Tensor v, BenchShape shape) {
        OnnxAttention ort = new OnnxAttention(
                q.toFloatArray(),
                k.toFloatArray(),
                v.toFloatArray(),
                shape.heads(),
                shape.seq(),
                shape.headDim(),
                shape.causal(),
                threads());
        return new Checked() {
            @Override
            public void run() {
                ort.forward();
            }

            @Override
            public float[] output() {
                return ort.outputBhsd();
            }

            @Override
            public void close() {
                ort.close();
            }
        };
    }
}
