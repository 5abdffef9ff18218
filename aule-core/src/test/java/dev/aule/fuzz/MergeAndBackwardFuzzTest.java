package dev.aule.fuzz;

import dev.aule.Attention;
import dev.aule.AttentionOptions;
import dev.aule.AttentionResult;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Gradients;
import dev.aule.Tensor;
import dev.aule.fuzz.Contract.Breach;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.BackwardInputs;
import dev.aule.testing.BackwardCases;
import dev.aule.testing.Layout;
import dev.aule.testing.UnreachableMemory;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Fuzzes {@code Attention.mergeStates}/{@code mergeStatesInto} (partials over disjoint key sets, empty ones, hostile
 * LSEs, aliased outputs) and the backward pass ({@code Attention.backward} and each backend's, with every option,
 * hostile values, broken and aliased gradients).
 */
class MergeAndBackwardFuzzTest {
    @Test
    void mergedPartialsEqualAttentionOverTheUnionOrAreRejected() {
        Fuzz.check("mergeStates", 400, MergeAndBackwardFuzzTest::mergeCase);
    }

    @Test
    void gradientsMatchTheReferenceOrAreRejected() {
        Fuzz.check("backward", 300, MergeAndBackwardFuzzTest::backwardCase);
    }

    static void mergeCase(Choices c) {
        int batch = c.note("B", c.between(1, 2));
        int heads = c.note("H", c.pickInt(1, 2, 3));
        int sq = c.note("Sq", c.pickInt(1, 3, 5));
        int sk = c.note("Sk", c.pickInt(2, 5, 17, 33));
        int d = c.note("D", c.pickInt(Draws.DIMS));
        int parts = c.note("parts", c.between(1, 4));
        DType outType = c.note("out", Draws.dtype(c));
        Draws.Values values = c.note("values", c.pick(Draws.Values.values()));
        int breach = c.oneIn(2) ? c.note("break", c.below(8)) : 0;
        boolean into = c.note("into", c.oneIn(2));
        SplittableRandom rnd = new SplittableRandom(c.seed());
        AttentionOptions options = Draws.options(c, rnd, batch, heads, sq, sk, false, false);
        c.note("options", options);
        Tensor q = Draws.tensor(Layout.BHSD, DType.F32, batch, heads, sq, d, null, rnd);
        Tensor k = Draws.tensor(Layout.BHSD, DType.F32, batch, heads, sk, d, null, rnd);
        Tensor v = Draws.tensor(Layout.BHSD, DType.F32, batch, heads, sk, d, null, rnd);
        Draws.poison(values, rnd.nextBoolean() ? k : v, rnd);
        // Each key goes to one partial; a partial with no key is empty (out 0, lse -inf).
        int[] owner = new int[sk];
        for (int j = 0; j < sk; j++) {
            owner[j] = rnd.nextInt(parts);
        }
        List<AttentionResult> partials = new ArrayList<>();
        AttentionOptions plain =
                options.toBuilder().causal(false).window(-1, -1).build();
        for (int p = 0; p < parts; p++) {
            List<Integer> mine = new ArrayList<>();
            for (int j = 0; j < sk; j++) {
                if (owner[j] == p) {
                    mine.add(j);
                }
            }
            // Near the F32 maximum a 16-bit partial would round to infinity on its own: keep those in F32.
            boolean huge = values == Draws.Values.NEAR_MAX || values == Draws.Values.ALL_NEAR_MAX;
            Tensor out = Tensor.allocate(huge ? DType.F32 : outType, batch, heads, sq, d);
            Tensor lse = Tensor.allocate(DType.F32, batch, heads, sq, 1);
            if (mine.isEmpty()) {
                lse.fill(Float.NEGATIVE_INFINITY);
            } else {
                int[] rows = mine.stream().mapToInt(Integer::intValue).toArray();
                for (int b = 0; b < batch; b++) {
                    Tensor kb = Sequences.gather(k, b, rows);
                    Tensor vb = Sequences.gather(v, b, rows);
                    Backends.get("reference")
                            .forward(
                                    q.sequence(b, 0, sq),
                                    kb,
                                    vb,
                                    out.sequence(b, 0, sq),
                                    lse.sequence(b, 0, sq),
                                    plain.toBuilder().alibiSlopes(null).build());
                }
            }
            partials.add(new AttentionResult(out, lse));
        }
        Tensor mergedOut = Tensor.allocate(outType, batch, heads, sq, d);
        Tensor mergedLse = Tensor.allocate(DType.F32, batch, heads, sq, 1);
        mergedOut.fill(Float.NaN);
        Breach why = Breach.none();
        for (AttentionResult p : partials) {
            for (float x : p.lse().toFloatArray()) {
                if (Float.isNaN(x) || x == Float.POSITIVE_INFINITY) {
                    // NaN inputs give NaN LSEs, which the contract rejects
                    why = Breach.of("a partial whose LSE is NaN (NaN inputs)", "partials");
                }
            }
        }
        switch (why.any() ? 0 : breach) {
            case 1 -> {
                partials.getFirst().lse().set(0, 0, 0, 0, Float.POSITIVE_INFINITY);
                why = Breach.of("an LSE of +inf", "partials");
            }
            case 2 -> {
                partials.getLast().lse().set(0, 0, sq - 1, 0, Float.NaN);
                why = Breach.of("an LSE of NaN", "partials");
            }
            case 3 -> {
                partials.add(new AttentionResult(
                        Tensor.allocate(outType, batch, heads, sq + 1, d),
                        Tensor.allocate(DType.F32, batch, heads, sq + 1, 1)));
                why = Breach.of("a partial of another shape", "partials");
            }
            case 4 -> {
                if (into && outType == DType.F32) {
                    mergedOut = partials.getFirst().out();
                    why = Breach.of("out that is a partial's output", "out", "partials");
                }
            }
            case 5 -> {
                if (into) {
                    mergedLse = Draws.over(mergedOut.memory(), DType.F32, Draws.shape(batch, heads, sq, 1));
                    if (mergedLse == null) {
                        mergedLse = Tensor.allocate(DType.F32, batch, heads, sq, 1);
                    } else {
                        why = Breach.of("lse over out", "lse", "out");
                    }
                }
            }
            case 6 -> {
                partials.set(
                        0,
                        new AttentionResult(
                                UnreachableMemory.closed(partials.getFirst().out()),
                                partials.getFirst().lse()));
                why = Breach.of("a partial in a closed arena", "partials");
            }
            case 7 -> {
                partials.set(
                        0,
                        new AttentionResult(
                                partials.getFirst().out(), Tensor.allocate(DType.F16, batch, heads, sq, 1)));
                why = Breach.of("an F16 LSE", "partials");
            }
            default -> {}
        }
        Tensor fo = mergedOut;
        Tensor fl = mergedLse;
        AttentionResult[] got = {new AttentionResult(fo, fl)};
        List<Tensor> written = into ? List.of(fo, fl) : List.of();
        Contract.check(
                why,
                written,
                () -> {
                    if (into) {
                        Attention.mergeStatesInto(partials, fo, fl);
                    } else {
                        got[0] = Attention.mergeStates(partials);
                    }
                },
                () -> {
                    Tensor ref = Tensor.allocate(got[0].out().dtype(), batch, heads, sq, d);
                    Tensor refLse = Tensor.allocate(DType.F32, batch, heads, sq, 1);
                    AttentionOptions whole = plain.toBuilder().alibiSlopes(null).build();
                    Backends.get("reference").forward(q, k, v, ref, refLse, whole);
                    double limit = outType == DType.F32 ? 1e-4 : 2e-2; // partials are rounded to out's dtype
                    // Each weight exp(lse_p - lse) moves with the rounding of the F32 LSEs, about 2^-24 of the
                    // largest logit: beyond 1e-3 the values carry no precision and only non-finite ones are held.
                    if (Contract.lseTolerance(q, k, whole) / 2 > 1e-3) {
                        limit = Double.MAX_VALUE;
                    }
                    Contract.assertClose(
                            "merged out",
                            got[0].out(),
                            ref,
                            Math.max(limit, Contract.outTolerance(outType, q, k, whole)));
                    Contract.assertClose("merged lse", got[0].lse(), refLse, Contract.lseTolerance(q, k, whole));
                });
    }

    static void backwardCase(Choices c) {
        String name = c.note("backend", c.pick("cpu", "reference"));
        AttentionBackend backend = Backends.get(name);
        boolean facade = c.note("facade", c.oneIn(3));
        int batch = c.note("B", c.between(1, 2));
        int kvHeads = c.note("Hkv", c.pickInt(1, 2));
        int group = c.note("group", c.pickInt(1, 2, 4));
        int hq = kvHeads * group;
        int sq = c.note("Sq", c.pickInt(1, 3, 16, 17, 5));
        int sk = c.note("Sk", c.pickInt(1, 3, 16, 17, 5));
        int d = c.note("D", c.pickInt(8, 16, 1, 7, 33));
        int dv = c.note("Dv", c.oneIn(4) ? c.pickInt(8, 16, 1, 7) : d);
        DType dtype = c.note("dtype", c.oneIn(3) ? c.pick(DType.F16, DType.BF16) : DType.F32);
        Draws.Values values = c.note(
                "values",
                c.pick(
                        Draws.Values.PLAIN,
                        Draws.Values.NAN,
                        Draws.Values.POSITIVE_INFINITY,
                        Draws.Values.NEGATIVE_INFINITY,
                        Draws.Values.NEAR_MAX));
        int breach = c.oneIn(2) ? c.note("break", c.below(8)) : 0;
        SplittableRandom rnd = new SplittableRandom(c.seed());
        AttentionOptions options =
                Draws.training(c, rnd, Draws.options(c, rnd, batch, hq, sq, sk, true, true), batch, hq);
        c.note("options", options);
        BackwardCases.Case shape = new BackwardCases.Case(dtype, batch, hq, kvHeads, sq, sk, d, dv, options);
        BackwardCases.Qkv qkv = BackwardCases.qkv(rnd, shape);
        Draws.poison(values, rnd.nextBoolean() ? qkv.k() : qkv.q(), rnd);
        Tensor fwdOut = Tensor.allocate(dtype, batch, hq, sq, dv);
        Tensor fwdLse = Tensor.allocate(DType.F32, batch, hq, sq, 1);
        Backends.get("reference").forward(qkv.q(), qkv.k(), qkv.v(), fwdOut, fwdLse, options);
        Tensor dOut = Draws.tensor(Layout.BHSD, dtype, batch, hq, sq, dv, null, rnd);
        BackwardCases.Inputs in = new BackwardCases.Inputs(qkv.q(), qkv.k(), qkv.v(), fwdOut, fwdLse, dOut);
        Gradients grads = BackwardCases.poisoned(in, dtype);
        BackwardInputs inputs = new BackwardInputs(in.q(), in.k(), in.v(), in.out(), in.dOut(), in.lse());
        Breach why = Breach.none();
        switch (facade && (breach <= 3 || breach == 7) ? 0 : breach) {
            case 1 -> {
                grads = new Gradients(Tensor.allocate(dtype, batch, hq, sq + 1, d), grads.dk(), grads.dv());
                why = Breach.of("dq of another shape", "dq");
            }
            case 2 -> {
                Tensor alias = Draws.over(in.q().memory(), dtype, Draws.shape(batch, kvHeads, sk, d));
                if (alias != null && !facade) {
                    grads = new Gradients(grads.dq(), alias, grads.dv());
                    why = Breach.of("dk over q", "dk", "q");
                }
            }
            case 3 -> {
                if (!facade) {
                    grads = new Gradients(grads.dq(), grads.dk(), grads.dk().headDim() == dv ? grads.dk() : grads.dv());
                    if (d == dv) {
                        why = Breach.of("dv that is dk", "dv", "dk");
                    }
                }
            }
            case 4 -> {
                inputs = new BackwardInputs(
                        in.q(), in.k(), in.v(), in.out(), in.dOut(), Tensor.allocate(DType.F32, batch, hq, sq + 1, 1));
                why = Breach.of("an lse of another shape", "lse");
            }
            case 5 -> {
                inputs = new BackwardInputs(
                        in.q(), in.k(), in.v(), in.out(), Tensor.allocate(dtype, batch, hq, sq, dv + 1), in.lse());
                why = Breach.of("dOut of another head dim", "dOut");
            }
            case 6 -> {
                inputs = new BackwardInputs(
                        in.q(), UnreachableMemory.closed(in.k()), in.v(), in.out(), in.dOut(), in.lse());
                why = Breach.of("k in a closed arena", "k");
            }
            case 7 -> {
                if (!facade) {
                    grads = new Gradients(grads.dq(), grads.dk(), Draws.zeroStride(grads.dv()));
                    if (grads.dv() == null) {
                        grads = BackwardCases.poisoned(in, dtype);
                    } else {
                        why = Breach.of("dv with a zero stride", "dv");
                    }
                }
            }
            default -> {}
        }
        Gradients fg = grads;
        BackwardInputs fi = inputs;
        Gradients[] got = {grads};
        Contract.check(
                why,
                facade ? List.of() : List.of(fg.dq(), fg.dk(), fg.dv()),
                () -> {
                    if (facade) {
                        got[0] = Attention.backward(fi.q(), fi.k(), fi.v(), fi.out(), fi.dOut(), fi.lse(), options);
                    } else {
                        backend.backward(fi, fg, options);
                    }
                },
                () -> {
                    Gradients expected = BackwardCases.backward(Backends.get("reference"), in, options, DType.F32);
                    // 16-bit out enters delta = rowsum(dOut * out) rounded, and dq = scale * sum ds k carries
                    // that rounding times the scale (the float64 reference takes delta from its own softmax)
                    double bound = dtype == DType.F32 ? 1e-4 : 2e-2 * Math.max(1, Math.abs(options.scale(d)));
                    double logits = Math.max(
                            Contract.outTolerance(DType.F32, in.q(), in.k(), options) / Math.ulp(1f),
                            Contract.rawLogitBound(in.q(), in.k(), options));
                    bound = Math.max(bound, 10 * Math.ulp(1f) * logits * logits); // gradients grow with the logits
                    Contract.assertClose("dq", got[0].dq(), expected.dq(), bound);
                    Contract.assertClose("dk", got[0].dk(), expected.dk(), bound);
                    Contract.assertClose("dv", got[0].dv(), expected.dv(), bound);
                });
    }
}
