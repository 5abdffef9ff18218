package dev.aule;

import dev.aule.spi.AttentionBackend;
import dev.aule.spi.BackwardInputs;
import dev.aule.testing.BackwardCases;
import dev.aule.testing.BackwardCases.Case;
import dev.aule.testing.BackwardCases.Inputs;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Named;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Function;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Backward validation, one test per rule, on both backends: the message names the argument and the
 * rule, and no gradient element is written. Then {@link Attention#backward} end to end.
 */
class BackwardValidationTest {
    private static final float UNTOUCHED = 7f;
    // D != Dv and Hq != Hkv, so a gradient shaped like the wrong input is caught.
    private static final Case CASE = new Case(DType.F32, 1, 4, 2, 5, 6, 8, 4, AttentionOptions.defaults());

    /** A call's arguments; each test breaks one. */
    private record Call(
            Tensor q, Tensor k, Tensor v, Tensor out, Tensor dOut, Tensor lse, Tensor dq, Tensor dk, Tensor dv) {
        static Call valid() {
            Inputs in = BackwardCases.inputs(new SplittableRandom(1), CASE, Backends.get("reference"));
            Gradients g = BackwardCases.poisoned(in, DType.F32);
            return new Call(in.q(), in.k(), in.v(), in.out(), in.dOut(), in.lse(), g.dq(), g.dk(), g.dv());
        }

        /** This call with the argument named {@code argument} replaced by {@code t}. */
        Call with(String argument, Tensor t) {
            Tensor[] args = {q, k, v, out, dOut, lse, dq, dk, dv};
            args[ARGUMENTS.indexOf(argument)] = t;
            return new Call(args[0], args[1], args[2], args[3], args[4], args[5], args[6], args[7], args[8]);
        }
    }

    /** The arguments' names, in the order of the call. */
    private static final List<String> ARGUMENTS = List.of("q", "k", "v", "out", "dOut", "lse", "dq", "dk", "dv");

    /** One broken call: how it is broken, the argument the message must name and the rule it must state. */
    static Stream<Arguments> brokenCalls() {
        return Stream.of(
                broken("outMustHaveTheOutputShape", "out", "shape", c -> Tensor.allocate(DType.F32, 1, 4, 5, 8)),
                broken("dOutMustHaveTheOutputShape", "dOut", "shape", c -> Tensor.allocate(DType.F32, 1, 4, 6, 4)),
                broken("lseMustBeF32", "lse", "F32", c -> Tensor.allocate(DType.F16, 1, 4, 5, 1)),
                broken("lseMustHaveOneValuePerRow", "lse", "shape", c -> Tensor.allocate(DType.F32, 1, 2, 5, 1)),
                broken("dqMustBeShapedLikeQ", "dq", "[1, 4, 5, 8]", c -> Tensor.allocate(DType.F32, 1, 4, 5, 4)),
                broken("dkMustBeShapedLikeK", "dk", "[1, 2, 6, 8]", c -> Tensor.allocate(DType.F32, 1, 4, 6, 8)),
                broken("dvMustBeShapedLikeV", "dv", "[1, 2, 6, 4]", c -> Tensor.allocate(DType.F32, 1, 2, 6, 8)),
                broken(
                        "gradientsMustBeWritable",
                        "dk",
                        "read-only",
                        c -> Tensor.of(
                                MemorySegment.ofArray(new float[2 * 6 * 8]).asReadOnly(),
                                DType.F32,
                                c.k().shape(),
                                c.k().strides())),
                // Stride 0 over heads: both KV heads' gradients would land on the same floats.
                broken(
                        "gradientsMustHaveDistinctElements",
                        "dv",
                        "distinct",
                        c -> Tensor.of(MemorySegment.ofArray(new float[6 * 4]), DType.F32, c.v().shape(), new long[] {
                            24, 0, 4, 1
                        })));
    }

    private static Arguments broken(String rule, String argument, String says, Function<Call, Tensor> replacement) {
        UnaryOperator<Call> breakIt = c -> c.with(argument, replacement.apply(c));
        return Arguments.of(Named.of(rule, breakIt), argument, says);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("brokenCalls")
    void eachRuleIsEnforced(UnaryOperator<Call> breakIt, String argument, String rule) {
        rejects(breakIt, argument, rule);
    }

    @Test
    void gradientsMustNotOverlapAnInput() {
        rejects(c -> c.with("dq", c.q()), "dq", "overlaps q");
        rejects(
                c -> c.with("dk", Tensor.of(c.k().memory(), DType.F32, c.k().shape(), c.k().strides())),
                "dk",
                "overlaps k");
        rejects(
                c -> c.with("dv", Tensor.of(c.out().memory(), DType.F32, c.v().shape(), c.v().strides())),
                "dv",
                "overlaps out");
        rejects(
                c -> c.with("dv", Tensor.of(c.dOut().memory(), DType.F32, c.v().shape(), c.v().strides())),
                "dv",
                "overlaps dOut");
        rejects(
                c -> {
                    // lse in floats [0, 20) of one array, dv in [10, 58).
                    MemorySegment shared = MemorySegment.ofArray(new float[64]);
                    Tensor lse = Tensor.of(
                            shared, DType.F32, c.lse().shape(), c.lse().strides());
                    Tensor dv = Tensor.of(shared.asSlice(10 * 4), DType.F32, c.v().shape(), c.v().strides());
                    return c.with("lse", lse).with("dv", dv);
                },
                "dv",
                "overlaps lse");
    }

    @Test
    void gradientsMustNotOverlapEachOther() {
        rejects(
                c -> {
                    // dk and dv views of one array: dk covers [0, 96) and dv [48, 96).
                    MemorySegment shared = MemorySegment.ofArray(new float[2 * 6 * 8]);
                    Tensor dk = Tensor.of(shared, DType.F32, c.k().shape(), c.k().strides());
                    Tensor dv = Tensor.of(shared.asSlice(48 * 4), DType.F32, c.v().shape(), c.v().strides());
                    return c.with("dk", dk).with("dv", dv);
                },
                "dv",
                "overlaps dk");
    }

    /** Both backends reject the broken call, naming {@code argument} and the rule, and leave every gradient untouched. */
    private static void rejects(UnaryOperator<Call> breakIt, String argument, String rule) {
        for (String name : List.of("cpu", "reference")) {
            AttentionBackend backend = Backends.get(name);
            Call call = breakIt.apply(Call.valid());
            List<Tensor> grads = List.of(call.dq(), call.dk(), call.dv());
            for (Tensor g : grads) {
                if (!g.memory().isReadOnly()) {
                    g.fill(UNTOUCHED);
                }
            }
            IllegalArgumentException e = assertThrows(
                    IllegalArgumentException.class,
                    () -> backend.backward(
                            new BackwardInputs(call.q(), call.k(), call.v(), call.out(), call.dOut(), call.lse()),
                            new Gradients(call.dq(), call.dk(), call.dv()),
                            CASE.options()),
                    name);
            assertTrue(
                    e.getMessage().startsWith(argument + ":") && e.getMessage().contains(rule),
                    name + ": message '" + e.getMessage() + "' should name " + argument + " and say " + rule);
            for (Tensor g : grads) {
                for (float x : g.toFloatArray()) {
                    assertTrue(
                            g.memory().isReadOnly() || x == UNTOUCHED,
                            name + ": a gradient was written although " + argument + " was rejected");
                }
            }
        }
    }

    @Test
    void backendsAdvertiseTheBackwardPass() {
        assertTrue(Backends.get("cpu").capabilities().backward());
        assertTrue(Backends.get("reference").capabilities().backward());
    }

    /** Attention.backward allocates gradients in the inputs' dtypes and matches the backend called directly. */
    @Test
    void attentionBackwardEndToEnd() {
        SplittableRandom rnd = new SplittableRandom(4);
        AttentionOptions options = AttentionOptions.builder().causal(true).build();
        for (DType dtype : new DType[] {DType.F32, DType.BF16}) {
            Tensor q = Tensors.random(rnd, dtype, 1, 4, 33, 16);
            Tensor k = Tensors.random(rnd, dtype, 1, 2, 40, 16);
            Tensor v = Tensors.random(rnd, dtype, 1, 2, 40, 24);
            Tensor dOut = Tensors.random(rnd, dtype, 1, 4, 33, 24);
            AttentionResult forward = Attention.forwardWithLse(q, k, v, options);
            Gradients grads = Attention.backward(q, k, v, forward.out(), dOut, forward.lse(), options);
            assertEquals(dtype, grads.dq().dtype());
            assertEquals(dtype, grads.dk().dtype());
            assertEquals(dtype, grads.dv().dtype());
            AttentionBackend selected = Backends.selected();
            Tensor dq = BackwardCases.like(q, dtype);
            Tensor dk = BackwardCases.like(k, dtype);
            Tensor dv = BackwardCases.like(v, dtype);
            selected.backward(
                    new BackwardInputs(q, k, v, forward.out(), dOut, forward.lse()),
                    new Gradients(dq, dk, dv),
                    options);
            assertArrayEquals(dq.toFloatArray(), grads.dq().toFloatArray());
            assertArrayEquals(dk.toFloatArray(), grads.dk().toFloatArray());
            assertArrayEquals(dv.toFloatArray(), grads.dv().toFloatArray());
        }
    }
}
