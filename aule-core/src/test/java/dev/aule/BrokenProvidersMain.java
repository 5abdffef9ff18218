package dev.aule;

import dev.aule.spi.AttentionBackend;
import dev.aule.spi.Availability;
import dev.aule.spi.Capabilities;
import dev.aule.testing.Tensors;

import java.util.SplittableRandom;

/**
 * Run by {@link IsolationTest} in a JVM whose class path registers the broken providers below (and one
 * class that does not exist): prints one line per backend found ({@code BACKEND name available reason}), then
 * runs a forward on the cpu backend and through the facade and prints {@code FORWARD OK} with the backend used.
 */
public final class BrokenProvidersMain {
    private BrokenProvidersMain() {}

    public static void main(String[] args) {
        for (AttentionBackend backend : Backends.all()) {
            System.out.println(
                    "BACKEND " + backend.name() + " " + backend.availability().available() + " "
                            + backend.availability().reason());
        }
        SplittableRandom rnd = new SplittableRandom(1);
        Tensor q = Tensors.random(rnd, DType.F32, 1, 2, 9, 16);
        Tensor k = Tensors.random(rnd, DType.F32, 1, 2, 9, 16);
        Tensor v = Tensors.random(rnd, DType.F32, 1, 2, 9, 16);
        Tensor out = Tensor.allocate(DType.F32, 1, 2, 9, 16);
        Backends.get("cpu").forward(q, k, v, out, null, AttentionOptions.defaults());
        Attention.forwardInto(q, k, v, out, null, AttentionOptions.defaults());
        System.out.println("FORWARD OK " + Backends.selected().name() + " " + out.get(0, 1, 8, 15));
    }

    /** A provider whose constructor throws. */
    public static final class ThrowingConstructor extends Broken {
        public ThrowingConstructor() {
            throw new IllegalStateException("no device here");
        }
    }

    /** A provider whose name is null. */
    public static final class NullName extends Broken {
        @Override
        public String name() {
            return null;
        }
    }

    /** A provider whose availability check throws. */
    public static final class ThrowingAvailability extends Broken {
        @Override
        public String name() {
            return "flaky";
        }

        @Override
        public Availability availability() {
            throw new UnsupportedOperationException("driver probe crashed");
        }
    }

    /** A provider whose class cannot initialise. */
    public static final class FailingInitialiser extends Broken {
        static final int VALUE = Integer.parseInt("not a number");

        @Override
        public String name() {
            return "init" + VALUE;
        }
    }

    /** What the broken providers share; each breaks one part. */
    abstract static class Broken implements AttentionBackend {
        @Override
        public String name() {
            return "broken";
        }

        @Override
        public String description() {
            return "a broken provider";
        }

        @Override
        public int priority() {
            return 1000; // above cpu: it would be chosen if it were taken for working
        }

        @Override
        public Availability availability() {
            return Availability.available("always");
        }

        @Override
        public Capabilities capabilities() {
            return Capabilities.of(256, java.util.EnumSet.of(DType.F32));
        }

        @Override
        public void forward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, AttentionOptions options) {
            throw new AssertionError("a broken provider was called");
        }
    }
}
