package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.reference.ReferenceBackend;

import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * The first-use check of the cooperative-matrix forward on a device: fixed small F16 calls through that kernel,
 * compared with the float64 reference. Only a device that passes runs the kernel; one that fails, or whose run
 * throws, keeps the scalar kernels, and {@code aule info} shows why. No CI device runs cooperative matrices, so
 * this check is what stands between an untested driver path and a user's results.
 */
final class CoopCheck {
    /*
     * Maintainers: the cases cover both compiled head dims (64, 128, and a D padded into 64), GQA, causal, a window,
     * softcap, ALiBi, an explicit scale, Sq != Sk, partial query tiles and key blocks, and lse. The tolerance is
     * for F16 inputs and F16 probabilities with F32 accumulation (errors near 1e-3 on these cases); a kernel that
     * reads the wrong tile, mask or subgroup layout is off by far more (or NaN, which fails every comparison).
     */

    /** Largest allowed |got - want| / (1 + |want|) for out and lse. */
    static final double TOLERANCE = 1e-2;

    private CoopCheck() {}

    /**
     * Whether the coop kernel may run on a device, and why (for {@code aule info} and for refusals).
     *
     * @param enabled whether it passed its check
     * @param reason what happened
     */
    record Result(boolean enabled, String reason) {
        /** The state before any check: disabled, saying what the device lacks or that no check ran. */
        static Result notChecked(DeviceInfo device) {
            String missing = device.coop().missingFeature();
            return new Result(false, missing != null ? missing : "its first-use check has not run on this device");
        }

        /** For {@code aule info}. */
        String summary() {
            return "cooperative-matrix forward " + (enabled ? "on (" : "off (") + reason + ")";
        }
    }

    /** The status the check's own runs use: the coop kernel enabled, for them alone. */
    static final Result UNDER_CHECK = new Result(true, "under its first-use check");

    /** Runs one forward through the coop kernel (the device, or a fake in tests). */
    @FunctionalInterface
    interface Runner {
        void forward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, AttentionOptions options);
    }

    /** One fixed call: its name, geometry and options. */
    record Case(String name, int hq, int hkv, int sq, int sk, int d, AttentionOptions options) {}

    static final List<Case> CASES = List.of(
            new Case(
                    "HD 64, GQA 2:1, causal",
                    4,
                    2,
                    70,
                    70,
                    64,
                    AttentionOptions.builder().causal(true).build()),
            new Case(
                    "HD 128, window (20, 5), softcap 30, ALiBi, Sk > Sq",
                    2,
                    1,
                    33,
                    90,
                    128,
                    AttentionOptions.builder()
                            .window(20, 5)
                            .softcap(30f)
                            .alibiSlopes(new float[] {0.25f, 0.0625f})
                            .build()),
            new Case(
                    "D 40 (padded to 64), scale 0.3, Sq 5, Sk 130",
                    1,
                    1,
                    5,
                    130,
                    40,
                    AttentionOptions.builder().scale(0.3f).build()));

    /**
     * Checks the coop kernel on {@code device}: refused at once when the device lacks what it needs (or its
     * creation with the extension failed: {@code openFailure}), otherwise every case through {@code runner}
     * against the reference. Never throws: a runner's exception disables the kernel with its message.
     */
    static Result run(DeviceInfo device, String openFailure, Runner runner) {
        if (openFailure != null) {
            return new Result(false, openFailure);
        }
        String missing = device.coop().missingFeature();
        if (missing != null) {
            return new Result(false, missing);
        }
        for (Case c : CASES) {
            String noPlan = KernelTable.planRefusal(
                    device,
                    TilePlan.bucket(c.d(), c.d()),
                    new AttentionKernels.InputTypes(DType.F16, DType.F16, DType.F16));
            if (noPlan != null) {
                return new Result(false, noPlan);
            }
        }
        ReferenceBackend reference = new ReferenceBackend();
        for (int n = 0; n < CASES.size(); n++) {
            Case c = CASES.get(n);
            try {
                String failure = check(c, 7_000 + n, runner, reference);
                if (failure != null) {
                    return new Result(false, "its first-use check failed on case '" + c.name() + "': " + failure);
                }
            } catch (RuntimeException | LinkageError e) {
                return new Result(false, "its first-use check threw on case '" + c.name() + "': " + e);
            }
        }
        return new Result(
                true,
                "its first-use check passed: " + CASES.size() + " F16 cases within " + TOLERANCE
                        + " of the float64 reference; shapes " + device.coop().usable());
    }

    /** Null when {@code runner} matches the reference on {@code c}; otherwise the worst element, in words. */
    private static String check(Case c, long seed, Runner runner, ReferenceBackend reference) {
        SplittableRandom random = new SplittableRandom(seed);
        Tensor q = random(random, c.hq(), c.sq(), c.d());
        Tensor k = random(random, c.hkv(), c.sk(), c.d());
        Tensor v = random(random, c.hkv(), c.sk(), c.d());
        Tensor out = Tensor.allocate(DType.F32, 1, c.hq(), c.sq(), c.d());
        Tensor lse = Tensor.allocate(DType.F32, 1, c.hq(), c.sq(), 1);
        Tensor wantOut = Tensor.allocate(DType.F32, 1, c.hq(), c.sq(), c.d());
        Tensor wantLse = Tensor.allocate(DType.F32, 1, c.hq(), c.sq(), 1);
        out.fill(Float.NaN); // a kernel that writes nothing fails
        lse.fill(Float.NaN);
        runner.forward(q, k, v, out, lse, c.options());
        reference.forward(q, k, v, wantOut, wantLse, c.options());
        String bad = compare("out", out.toFloatArray(), wantOut.toFloatArray());
        return bad != null ? bad : compare("lse", lse.toFloatArray(), wantLse.toFloatArray());
    }

    private static Tensor random(SplittableRandom random, int heads, int seq, int d) {
        Tensor t = Tensor.allocate(DType.F16, 1, heads, seq, d);
        for (int h = 0; h < heads; h++) {
            for (int s = 0; s < seq; s++) {
                for (int i = 0; i < d; i++) {
                    t.set(0, h, s, i, (float) (2 * random.nextDouble() - 1));
                }
            }
        }
        return t;
    }

    /** Null when every element is within the tolerance (equal infinities and NaN where the reference has NaN); else the first that is not. */
    static String compare(String what, float[] got, float[] want) {
        for (int i = 0; i < got.length; i++) {
            // -inf lse of a row that sees no key; NaN where the reference has NaN (a visible NaN value)
            boolean same = got[i] == want[i] || (Float.isNaN(got[i]) && Float.isNaN(want[i]));
            double error = Math.abs((double) got[i] - want[i]) / (1 + Math.abs((double) want[i]));
            if (!same && !(error <= TOLERANCE)) { // NaN fails
                return String.format(Locale.ROOT, "%s[%d] = %s, reference %s", what, i, got[i], want[i]);
            }
        }
        return null;
    }
}
