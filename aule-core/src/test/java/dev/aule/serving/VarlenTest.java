package dev.aule.serving;

import dev.aule.Attention;
import dev.aule.AttentionOptions;
import dev.aule.AttentionResult;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.PackedSequences;
import dev.aule.spi.PagedKv;
import dev.aule.testing.BackwardCases;
import dev.aule.testing.BackwardCases.Case;
import dev.aule.testing.BackwardCases.Qkv;
import dev.aule.testing.ForwardCase;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Packed variable-length attention: each sequence equals its own forward; nothing crosses a boundary. */
class VarlenTest {

    @Test
    void eachPackedSequenceEqualsItsOwnForward() {
        for (long seed = 1; seed <= 30; seed++) {
            SplittableRandom rnd = new SplittableRandom(seed);
            Geometry g = Geometry.random(rnd, 5, 12);
            boolean selfAttention = rnd.nextBoolean(); // prefill: the same lengths for q and k
            int[] cuQ = new int[g.sequences() + 1];
            int[] cuK = new int[g.sequences() + 1];
            for (int s = 0; s < g.sequences(); s++) {
                int rows = rnd.nextInt(6) == 0 ? 0 : 1 + rnd.nextInt(90);
                int keys = selfAttention ? rows : rnd.nextInt(6) == 0 ? 0 : 1 + rnd.nextInt(90);
                cuQ[s + 1] = cuQ[s] + rows;
                cuK[s + 1] = cuK[s] + keys;
            }
            if (cuQ[g.sequences()] == 0 || cuK[g.sequences()] == 0) {
                continue; // a tensor needs at least one row
            }
            DType dtype = new DType[] {DType.F32, DType.F16, DType.BF16}[(int) (seed % 3)];
            // The THD layout of packed engines: [totalTokens, heads, headDim] in memory.
            Tensor q = Tensors.random(rnd, dtype, 1, g.queryHeads(), cuQ[g.sequences()], g.headDim());
            Tensor k = Tensors.random(rnd, dtype, 1, g.kvHeads(), cuK[g.sequences()], g.headDim());
            Tensor v = Tensors.random(rnd, dtype, 1, g.kvHeads(), cuK[g.sequences()], g.valueDim());
            AttentionOptions options = ForwardCase.randomOptions(rnd, g.queryHeads(), 90);
            for (AttentionBackend backend : new AttentionBackend[] {Backends.get("cpu"), Backends.get("reference")}) {
                Tensor out = Oracle.poisoned(dtype, 1, q.heads(), cuQ[g.sequences()], g.valueDim());
                Tensor lse = Oracle.poisoned(DType.F32, 1, q.heads(), cuQ[g.sequences()], 1);
                backend.forwardVarlen(q, k, v, new PackedSequences(cuQ, cuK), out, lse, options);
                for (int s = 0; s < g.sequences(); s++) {
                    int rows = cuQ[s + 1] - cuQ[s];
                    int keys = cuK[s + 1] - cuK[s];
                    if (rows == 0) {
                        continue;
                    }
                    Tensor ks = keys == 0 ? null : k.sequence(0, cuK[s], keys);
                    Tensor vs = keys == 0 ? null : v.sequence(0, cuK[s], keys);
                    String where = backend.name() + " seed " + seed + " sequence " + s + " cuQ " + Arrays.toString(cuQ)
                            + " cuK " + Arrays.toString(cuK) + " " + options;
                    Oracle.assertRowsMatch(out, lse, q, 0, cuQ[s], rows, ks, vs, g.valueDim(), options, where);
                }
            }
        }
    }

    @Test
    void intoCallerBuffersThroughStridedViewsGivesTheBitsOfTheAllocatingCall() {
        int[] cuQ = {0, 7, 7, 30};
        int[] cuK = {0, 9, 12, 30};
        int heads = 4;
        int d = 16;
        for (long seed = 1; seed <= 6; seed++) {
            SplittableRandom rnd = new SplittableRandom(seed);
            Tensor q = Tensors.random(rnd, DType.F32, 1, heads, 30, d);
            Tensor k = Tensors.random(rnd, DType.F32, 1, 2, 30, d);
            Tensor v = Tensors.random(rnd, DType.F32, 1, 2, 30, d);
            AttentionOptions options = ForwardCase.randomOptions(rnd, heads, 30);
            AttentionResult want = Attention.forwardVarlen(q, k, v, cuQ, cuK, options);
            // The output as [tokens][heads * d] rows of a larger buffer, as a model's hidden states lie.
            float[] hidden = new float[3 + 30 * heads * d + 5];
            Arrays.fill(hidden, Float.NaN);
            Tensor out = Tensor.of(
                    java.lang.foreign.MemorySegment.ofArray(hidden).asSlice(3L * Float.BYTES),
                    DType.F32,
                    new long[] {1, heads, 30, d},
                    new long[] {30L * heads * d, d, (long) heads * d, 1});
            Tensor lse = seed % 2 == 0 ? null : Tensor.allocate(DType.F32, 1, heads, 30, 1);
            Attention.forwardVarlenInto(q, k, v, cuQ, cuK, out, lse, options);
            assertArrayEquals(want.out().toFloatArray(), out.toFloatArray(), "out, seed " + seed);
            if (lse != null) {
                assertArrayEquals(want.lse().toFloatArray(), lse.toFloatArray(), "lse, seed " + seed);
            }
            for (int i : new int[] {0, 1, 2, hidden.length - 5, hidden.length - 1}) {
                assertTrue(Float.isNaN(hidden[i]), "nothing written outside the view, at " + i);
            }
        }
    }

    @Test
    void intoRejectsAWrongOutputAndWritesNothing() {
        int[] cu = {0, 5, 12};
        Tensor q = Tensors.random(new SplittableRandom(3), DType.F32, 1, 2, 12, 8);
        Tensor k = Tensors.random(new SplittableRandom(4), DType.F32, 1, 2, 12, 8);
        Tensor v = Tensors.random(new SplittableRandom(5), DType.F32, 1, 2, 12, 8);
        Tensor shortOut = Tensor.allocate(DType.F32, 1, 2, 11, 8);
        shortOut.fill(7f);
        IllegalArgumentException wrongShape = assertThrows(
                IllegalArgumentException.class,
                () -> Attention.forwardVarlenInto(q, k, v, cu, cu, shortOut, null, AttentionOptions.defaults()));
        assertTrue(wrongShape.getMessage().contains("out"), wrongShape.getMessage());
        for (float x : shortOut.toFloatArray()) {
            assertTrue(x == 7f, "nothing written");
        }
        IllegalArgumentException overlap = assertThrows(
                IllegalArgumentException.class,
                () -> Attention.forwardVarlenInto(q, k, v, cu, cu, q, null, AttentionOptions.defaults()));
        assertTrue(overlap.getMessage().contains("out"), overlap.getMessage());
    }

    @Test
    void keysOfOtherSequencesNeverInfluenceARow() {
        int[] cu = {0, 4, 10};
        AttentionOptions causal = AttentionOptions.builder().causal(true).build();
        Qkv in = BackwardCases.qkv(new SplittableRandom(8), new Case(DType.F32, 1, 2, 2, 10, 10, 16, 16, causal));
        AttentionResult before = Attention.forwardVarlen(in.q(), in.k(), in.v(), cu, cu, causal);
        for (int j = 4; j < 10; j++) { // overwrite the second sequence's keys and values
            for (int x = 0; x < 16; x++) {
                in.k().set(0, 0, j, x, 1000f);
                in.v().set(0, 1, j, x, -1000f);
            }
        }
        AttentionResult after = Attention.forwardVarlen(in.q(), in.k(), in.v(), cu, cu, causal);
        float[] a = before.out().sequence(0, 0, 4).toFloatArray();
        float[] b = after.out().sequence(0, 0, 4).toFloatArray();
        assertArrayEquals(a, b);
    }

    @Test
    void badOffsetsAreRejectedBeforeAnyWrite() {
        SplittableRandom rnd = new SplittableRandom(9);
        Qkv in = BackwardCases.qkv(rnd, new Case(DType.F32, 1, 2, 2, 10, 12, 8, 8, AttentionOptions.defaults()));
        int[][][] bad = { // {cuQ, cuK, expected argument as the first element's first entry index}
            {{0, 5, 10}, {0, 6, 11}}, {{0, 5, 10}, {1, 6, 12}}, {{0, 11, 10}, {0, 6, 12}},
            {{0, 10}, {0, 6, 12}}, {{10}, {12}}, {{0, 6, 4, 10}, {0, 1, 2, 12}}
        };
        String[] argument = {"cuSeqlensK", "cuSeqlensK", "cuSeqlensQ[2]", "cuSeqlensK", "cuSeqlensQ", "cuSeqlensQ[2]"};
        for (AttentionBackend backend : new AttentionBackend[] {Backends.get("cpu"), Backends.get("reference")}) {
            for (int i = 0; i < bad.length; i++) {
                int[][] c = bad[i];
                Tensor out = Oracle.poisoned(DType.F32, 1, 2, 10, 8);
                IllegalArgumentException e = assertThrows(
                        IllegalArgumentException.class,
                        () -> backend.forwardVarlen(
                                in.q(),
                                in.k(),
                                in.v(),
                                new PackedSequences(c[0], c[1]),
                                out,
                                null,
                                AttentionOptions.defaults()));
                assertTrue(e.getMessage().startsWith(argument[i]), argument[i] + " expected: " + e.getMessage());
                assertTrue(Oracle.allNaN(out), "nothing written");
            }
            Tensor q2 = Tensors.random(rnd, DType.F32, 2, 2, 5, 8);
            assertThrows(
                    IllegalArgumentException.class,
                    () -> backend.forwardVarlen(
                            q2,
                            in.k().sequence(0, 0, 12),
                            in.v(),
                            new PackedSequences(new int[] {0, 5}, new int[] {0, 12}),
                            Oracle.poisoned(DType.F32, 2, 2, 5, 8),
                            null,
                            AttentionOptions.defaults()));
        }
    }

    @Test
    void masksAndScoreModsAreRejectedByEveryServingCall() {
        AttentionOptions masked = AttentionOptions.builder()
                .maskMod(dev.aule.mask.MaskMod.causal())
                .build();
        Qkv in = BackwardCases.qkv(new SplittableRandom(10), new Case(DType.F32, 1, 2, 2, 4, 4, 8, 8, masked));
        for (AttentionBackend backend : new AttentionBackend[] {Backends.get("cpu"), Backends.get("reference")}) {
            Tensor out = Oracle.poisoned(DType.F32, 1, 2, 4, 8);
            String varlen = assertThrows(
                            IllegalArgumentException.class,
                            () -> backend.forwardVarlen(
                                    in.q(),
                                    in.k(),
                                    in.v(),
                                    new PackedSequences(new int[] {0, 4}, new int[] {0, 4}),
                                    out,
                                    null,
                                    masked))
                    .getMessage();
            String cached = assertThrows(
                            IllegalArgumentException.class,
                            () -> backend.forwardCached(in.q(), in.k(), in.v(), new int[] {4}, out, null, masked))
                    .getMessage();
            String paged = assertThrows(
                            IllegalArgumentException.class,
                            () -> backend.forwardPaged(
                                    in.q(),
                                    new PagedKv(in.k(), in.v(), new int[][] {{0}}, new int[] {4}),
                                    out,
                                    null,
                                    masked))
                    .getMessage();
            for (String message : new String[] {varlen, cached, paged}) {
                assertTrue(message.startsWith("options: masks"), message);
            }
            assertTrue(Oracle.allNaN(out), "nothing written");
        }
    }
}
