package dev.aule.fuzz;

import dev.aule.Attention;
import dev.aule.AttentionOptions;
import dev.aule.AttentionResult;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.fuzz.Contract.Breach;
import dev.aule.mask.AttentionMask;
import dev.aule.mask.BlockMask;
import dev.aule.mask.MaskMod;
import dev.aule.spi.AttentionBackend;
import dev.aule.testing.Layout;
import dev.aule.testing.UnreachableMemory;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Fuzzes the forward entry points ({@code AttentionBackend.forward} of cpu and reference,
 * {@code Attention.forward}, {@code forwardWithLse}, {@code forwardInto}) over random shapes, GQA groups,
 * dtypes, layouts (padded, interleaved, off-heap; shared, confined and automatic arenas), every option,
 * hostile element values and broken or aliased arguments, holding each case to {@link Contract}.
 */
class ForwardFuzzTest {
    /** Arguments a case breaks on purpose; NONE first, as the simplest. */
    enum Break {
        NONE,
        K_IS_V,
        Q_IS_K,
        OUT_SHAPE,
        LSE_SHAPE,
        LSE_DTYPE,
        OUT_OVER_Q,
        OUT_OVER_K,
        OUT_OVER_V,
        LSE_OVER_OUT,
        OUT_ZERO_STRIDE,
        OUT_READ_ONLY,
        Q_CLOSED,
        K_CLOSED,
        OUT_CLOSED,
        LSE_CLOSED,
        V_OTHER_THREAD,
        OUT_OTHER_THREAD,
        HEADS_NOT_MULTIPLE,
        VALUE_KEYS,
        HEAD_DIM,
        BATCH,
        ALIBI_LENGTH,
        MASK_SHAPE,
        BIAS_SHAPE,
        BLOCK_MASK_SHAPE
    }

    @Test
    void forwardMatchesTheReferenceOrRejectsNamingTheArgument() {
        Fuzz.check("forward", 1000, ForwardFuzzTest::forwardCase);
    }

    static void forwardCase(Choices c) throws Exception {
        String backendName = c.note("backend", c.pick("cpu", "reference"));
        AttentionBackend backend = Backends.get(backendName);
        int entry = c.below(4); // backend.forward, forwardInto, forwardWithLse, forward
        int batch = c.note("B", c.between(1, 2));
        int kvHeads = c.note("Hkv", c.pickInt(1, 2, 3));
        int group = c.note("group", c.pickInt(1, 2, 4));
        int hq = kvHeads * group;
        int sq = c.note("Sq", c.pickInt(Draws.LENGTHS));
        int sk = c.note("Sk", c.pickInt(Draws.LENGTHS));
        int d = c.note("D", c.pickInt(Draws.DIMS));
        int dv = c.note("Dv", c.oneIn(4) ? c.pickInt(Draws.DIMS) : d);
        while ((long) batch * hq * sq * sk * (d + dv) > Draws.MAX_WORK) {
            if (sk >= sq) {
                sk = (sk + 1) / 2;
            } else {
                sq = (sq + 1) / 2;
            }
        }
        DType qType = c.note("q", Draws.dtype(c));
        DType kvType = c.note("kv", Draws.dtype(c));
        DType outType = c.note("out", Draws.dtype(c));
        Layout[] layouts = {Draws.layout(c), Draws.layout(c), Draws.layout(c), Draws.layout(c)};
        c.note("layouts", Arrays.toString(layouts));
        int arenaKind = c.note("arena", c.below(3)); // shared, confined (this thread), automatic
        Draws.Values values = c.note("values", c.pick(Draws.Values.values()));
        int poisoned = c.note("valuesIn", c.below(3)); // q, k, v
        Break breach = c.note("break", c.oneIn(2) ? c.pick(Break.values()) : Break.NONE);
        SplittableRandom rnd = new SplittableRandom(c.seed());
        AttentionOptions options =
                Draws.training(c, rnd, Draws.options(c, rnd, batch, hq, sq, sk, true, false), batch, hq);
        c.note("options", options);

        try (Arena arena = arenaKind == 1 ? Arena.ofConfined() : Arena.ofShared();
                UnreachableMemory.OtherThread other = new UnreachableMemory.OtherThread(1 << 20)) {
            Arena memory = arenaKind == 2 ? Arena.ofAuto() : arena;
            Tensor q = Draws.tensor(layouts[0], qType, batch, hq, sq, d, memory, rnd);
            Tensor k = Draws.tensor(layouts[1], kvType, batch, kvHeads, sk, d, memory, rnd);
            Tensor v = Draws.tensor(layouts[2], kvType, batch, kvHeads, sk, dv, memory, rnd);
            Draws.poison(values, poisoned == 0 ? q : poisoned == 1 ? k : v, rnd);
            Tensor out = Draws.poisoned(layouts[3], outType, batch, hq, sq, dv, memory, rnd);
            Tensor lse = Tensor.allocate(DType.F32, batch, hq, sq, 1);
            lse.fill(Float.NaN);

            Breach why = Breach.none();
            switch (breach) {
                case NONE -> {}
                case K_IS_V -> {
                    if (d == dv) {
                        v = k; // one tensor as keys and values: legal, read twice
                    }
                }
                case Q_IS_K -> {
                    if (group == 1 && sq == sk && qType == kvType) {
                        k = q; // self-similarity: legal
                        if (d == dv) {
                            v = q;
                        }
                    }
                }
                case OUT_SHAPE -> {
                    out = Tensor.allocate(outType, batch, hq, sq + 1, dv);
                    why = Breach.of("out of shape Sq + 1", "out");
                }
                case LSE_SHAPE -> {
                    lse = Tensor.allocate(DType.F32, batch, hq, sq, 2);
                    why = Breach.of("lse of head dim 2", "lse");
                }
                case LSE_DTYPE -> {
                    lse = Tensor.allocate(DType.F16, batch, hq, sq, 1);
                    why = Breach.of("an F16 lse", "lse");
                }
                case OUT_OVER_Q, OUT_OVER_K, OUT_OVER_V -> {
                    Tensor input = breach == Break.OUT_OVER_Q ? q : breach == Break.OUT_OVER_K ? k : v;
                    Tensor alias = Draws.over(input.memory(), outType, Draws.shape(batch, hq, sq, dv));
                    if (alias != null && Contract.readable(input)) {
                        out = alias;
                        String name = breach.name().substring(9).toLowerCase();
                        why = Breach.of("out over the memory of " + name, "out", name);
                    }
                }
                case LSE_OVER_OUT -> {
                    Tensor alias = Draws.over(out.memory(), DType.F32, Draws.shape(batch, hq, sq, 1));
                    if (alias != null) {
                        lse = alias;
                        why = Breach.of("lse over the memory of out", "lse", "out");
                    }
                }
                case OUT_ZERO_STRIDE -> {
                    Tensor zero = Draws.zeroStride(out);
                    if (zero != null) {
                        out = zero;
                        why = Breach.of("out with a zero stride", "out");
                    }
                }
                case OUT_READ_ONLY -> {
                    out = Tensor.of(out.memory().asReadOnly(), out.dtype(), out.shape(), out.strides());
                    why = Breach.of("out over read-only memory", "out");
                }
                case Q_CLOSED -> {
                    q = UnreachableMemory.closed(q);
                    why = Breach.of("q in a closed arena", "q");
                }
                case K_CLOSED -> {
                    k = UnreachableMemory.closed(k);
                    why = Breach.of("k in a closed arena", "k");
                }
                case OUT_CLOSED -> {
                    out = UnreachableMemory.closed(out);
                    why = Breach.of("out in a closed arena", "out");
                }
                case LSE_CLOSED -> {
                    lse = UnreachableMemory.closed(lse);
                    why = Breach.of("lse in a closed arena", "lse");
                }
                case V_OTHER_THREAD -> {
                    v = other.tensor(v);
                    why = Breach.of("v confined to another thread", "v");
                }
                case OUT_OTHER_THREAD -> {
                    out = other.tensor(out);
                    why = Breach.of("out confined to another thread", "out");
                }
                case HEADS_NOT_MULTIPLE -> {
                    if (kvHeads > 1) {
                        q = Draws.tensor(Layout.BHSD, qType, batch, hq + 1, sq, d, memory, rnd);
                        why = Breach.of("Hq not a multiple of Hkv", "q", "k");
                    }
                }
                case VALUE_KEYS -> {
                    v = Draws.tensor(Layout.BHSD, kvType, batch, kvHeads, sk + 1, dv, memory, rnd);
                    why = Breach.of("v with one key more than k", "v");
                }
                case HEAD_DIM -> {
                    k = Draws.tensor(Layout.BHSD, kvType, batch, kvHeads, sk, d + 1, memory, rnd);
                    why = Breach.of("k's head dim unlike q's", "k");
                }
                case BATCH -> {
                    k = Draws.tensor(Layout.BHSD, kvType, batch + 1, kvHeads, sk, d, memory, rnd);
                    why = Breach.of("k with another batch", "k", "v");
                }
                case ALIBI_LENGTH -> {
                    options = options.toBuilder().alibiSlopes(new float[hq + 1]).build();
                    why = Breach.of("one ALiBi slope too many", "options.alibiSlopes");
                }
                case MASK_SHAPE -> {
                    options = options.toBuilder()
                            .mask(AttentionMask.of(new boolean[sq * (sk + 1)], 1, 1, sq, sk + 1))
                            .build();
                    why = Breach.of("a mask of Sk + 1 keys", "options.mask");
                }
                case BIAS_SHAPE -> {
                    options = options.toBuilder()
                            .bias(Tensor.allocate(DType.F32, 1, 1, sq + 1, sk))
                            .build();
                    why = Breach.of("a bias of Sq + 1 rows", "options.bias");
                }
                case BLOCK_MASK_SHAPE -> {
                    options = options.toBuilder()
                            .blockMask(BlockMask.of(MaskMod.causal(), sq, sk + 1))
                            .build();
                    why = Breach.of("a BlockMask of Sk + 1 keys", "options.blockMask");
                }
            }
            boolean ownsOut = breach.ordinal() >= Break.OUT_SHAPE.ordinal()
                    && breach.ordinal() <= Break.OUT_OTHER_THREAD.ordinal();
            int call = ownsOut && entry >= 2 ? 0 : entry;
            c.note(
                    "call",
                    call == 0
                            ? backend.name() + ".forward"
                            : "Attention." + new String[] {"", "forwardInto", "forwardWithLse", "forward"}[call] + " ("
                                    + Backends.selected().name() + ")");
            run(c, backend, call, q, k, v, out, lse, options, why);
        }
    }

    private static void run(
            Choices c,
            AttentionBackend backend,
            int call,
            Tensor q,
            Tensor k,
            Tensor v,
            Tensor out,
            Tensor lse,
            AttentionOptions options,
            Breach why) {
        List<Tensor> inputs = new ArrayList<>(List.of(q, k, v));
        List<byte[]> inputBytes = Contract.snapshot(inputs);
        byte[] outBefore = Contract.readable(out) ? out.memory().toArray(ValueLayout.JAVA_BYTE) : null;
        AttentionResult[] result = new AttentionResult[1];
        // forwardInto and backends take a null lse too, unless the case broke the lse
        Tensor withLse = !why.names().contains("lse") && c.oneIn(4) ? null : lse;
        Contract.check(
                why,
                List.of(out, lse),
                () -> {
                    switch (call) {
                        case 0 -> backend.forward(q, k, v, out, withLse, options);
                        case 1 -> Attention.forwardInto(q, k, v, out, withLse, options);
                        case 2 -> result[0] = Attention.forwardWithLse(q, k, v, options);
                        default -> result[0] = new AttentionResult(Attention.forward(q, k, v, options), null);
                    }
                },
                () -> {
                    Contract.assertUnchanged(inputs, inputBytes, "nothing (inputs of a valid call)");
                    Tensor gotOut = result[0] == null ? out : result[0].out();
                    Tensor gotLse = result[0] == null ? withLse : result[0].lse();
                    Tensor ref = Tensor.allocate(gotOut.dtype(), q.batch(), q.heads(), q.seqLen(), v.headDim());
                    Tensor refLse = Tensor.allocate(DType.F32, q.batch(), q.heads(), q.seqLen(), 1);
                    Backends.get("reference").forward(q, k, v, ref, refLse, options);
                    Contract.assertClose("out", gotOut, ref, Contract.outTolerance(gotOut.dtype(), q, k, options));
                    if (gotLse != null) {
                        Contract.assertClose("lse", gotLse, refLse, Contract.lseTolerance(q, k, options));
                    }
                    if (result[0] == null && outBefore != null && Layout.firstChangedGap(out, outBefore) >= 0) {
                        throw new AssertionError(
                                "wrote outside the output view, at byte " + Layout.firstChangedGap(out, outBefore));
                    }
                });
    }
}
