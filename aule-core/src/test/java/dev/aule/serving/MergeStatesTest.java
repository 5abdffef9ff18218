package dev.aule.serving;

import dev.aule.Attention;
import dev.aule.AttentionOptions;
import dev.aule.AttentionResult;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** mergeStates of the results over any partition of the keys equals the one-shot result. */
class MergeStatesTest {

    @Test
    void anyPartitionOfTheKeysMergesToTheOneShotResult() {
        for (long seed = 1; seed <= 40; seed++) {
            SplittableRandom rnd = new SplittableRandom(seed);
            int heads = 1 + rnd.nextInt(4);
            int sq = 1 + rnd.nextInt(5);
            int sk = 1 + rnd.nextInt(120);
            int d = new int[] {8, 32, 64}[rnd.nextInt(3)];
            int parts = 1 + rnd.nextInt(5);
            Tensor q = Tensors.random(rnd, DType.F32, 1, heads, sq, d);
            Tensor k = Tensors.random(rnd, DType.F32, 1, heads, sk, d);
            Tensor v = Tensors.random(rnd, DType.F32, 1, heads, sk, d);
            AttentionOptions options = AttentionOptions.builder()
                    .scale(new float[] {0.1f, 1f, 4f}[rnd.nextInt(3)])
                    .softcap(rnd.nextBoolean() ? 0f : 5f)
                    .build();
            // Each key goes to a random part (not contiguous); some parts stay empty.
            List<List<Integer>> members = new ArrayList<>();
            for (int p = 0; p < parts; p++) {
                members.add(new ArrayList<>());
            }
            for (int j = 0; j < sk; j++) {
                members.get(rnd.nextInt(parts)).add(j);
            }
            List<AttentionResult> partials = new ArrayList<>();
            for (List<Integer> keys : members) {
                partials.add(partial(q, k, v, keys, options, rnd.nextBoolean() ? "cpu" : "reference"));
            }
            AttentionResult merged = Attention.mergeStates(partials);
            AttentionResult ref = Oracle.forward(q, k, v, d, options);
            Oracle.assertMatches(
                    merged.out(), merged.lse(), ref, q, k, options, "seed " + seed + ", " + parts + " parts");
        }
    }

    /** Attention over a subset of keys; an empty subset is a partial of zeros with lse -inf (and NaN out, never read). */
    private static AttentionResult partial(
            Tensor q, Tensor k, Tensor v, List<Integer> keys, AttentionOptions options, String backend) {
        Tensor out = Tensor.allocate(DType.F32, 1, q.heads(), q.seqLen(), v.headDim());
        Tensor lse = Tensor.allocate(DType.F32, 1, q.heads(), q.seqLen(), 1);
        if (keys.isEmpty()) {
            out.fill(Float.NaN); // contributes nothing, whatever it holds
            lse.fill(Float.NEGATIVE_INFINITY);
            return new AttentionResult(out, lse);
        }
        Tensor ks = Tensor.allocate(DType.F32, 1, k.heads(), keys.size(), k.headDim());
        Tensor vs = Tensor.allocate(DType.F32, 1, v.heads(), keys.size(), v.headDim());
        float[] row = new float[Math.max(k.headDim(), v.headDim())];
        for (int h = 0; h < k.heads(); h++) {
            for (int i = 0; i < keys.size(); i++) {
                k.readRow(0, h, keys.get(i), row, 0);
                ks.writeRow(0, h, i, row, 0);
                v.readRow(0, h, keys.get(i), row, 0);
                vs.writeRow(0, h, i, row, 0);
            }
        }
        Backends.get(backend).forward(q, ks, vs, out, lse, options);
        return new AttentionResult(out, lse);
    }

    @Test
    void allEmptyPartialsGiveZeroAndMinusInfinity() {
        Tensor out = Tensor.allocate(DType.F32, 1, 2, 3, 4);
        out.fill(Float.NaN);
        Tensor lse = Tensor.allocate(DType.F32, 1, 2, 3, 1);
        lse.fill(Float.NEGATIVE_INFINITY);
        AttentionResult merged =
                Attention.mergeStates(List.of(new AttentionResult(out, lse), new AttentionResult(out, lse)));
        for (float x : merged.out().toFloatArray()) {
            assertEquals(0f, x);
        }
        for (float x : merged.lse().toFloatArray()) {
            assertEquals(Float.NEGATIVE_INFINITY, x);
        }
    }

    @Test
    void mismatchedPartialsAreRejected() {
        SplittableRandom rnd = new SplittableRandom(2);
        AttentionResult a = new AttentionResult(
                Tensors.random(rnd, DType.F32, 1, 2, 3, 4), Tensors.random(rnd, DType.F32, 1, 2, 3, 1));
        AttentionResult wrongOut = new AttentionResult(
                Tensors.random(rnd, DType.F32, 1, 2, 3, 5), Tensors.random(rnd, DType.F32, 1, 2, 3, 1));
        AttentionResult halfLse = new AttentionResult(
                Tensors.random(rnd, DType.F32, 1, 2, 3, 4), Tensors.random(rnd, DType.F16, 1, 2, 3, 1));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Attention.mergeStates(List.of()))
                .getMessage()
                .startsWith("partials"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Attention.mergeStates(List.of(a, wrongOut)))
                .getMessage()
                .startsWith("partials[1].out"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Attention.mergeStates(List.of(a, halfLse)))
                .getMessage()
                .startsWith("partials[1].lse"));
        Tensor lse = Tensor.allocate(DType.F32, 1, 2, 3, 1);
        assertTrue(
                assertThrows(IllegalArgumentException.class, () -> Attention.mergeStatesInto(List.of(a), a.out(), lse))
                        .getMessage()
                        .startsWith("out: memory overlaps"));
    }

    /**
     * An lse of -inf is an empty partial (weight 0); +inf or NaN cannot come from any forward, so the merge
     * rejects it, naming the partial, before writing anything.
     */
    @Test
    void anLseOfPlusInfinityOrNaNIsRejected() {
        SplittableRandom rnd = new SplittableRandom(3);
        AttentionResult a = new AttentionResult(
                Tensors.random(rnd, DType.F32, 1, 2, 3, 4), Tensors.random(rnd, DType.F32, 1, 2, 3, 1));
        for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY}) {
            AttentionResult b = new AttentionResult(
                    Tensors.random(rnd, DType.F32, 1, 2, 3, 4), Tensors.random(rnd, DType.F32, 1, 2, 3, 1));
            b.lse().set(0, 1, 2, 0, bad);
            Tensor out = Tensor.allocate(DType.F32, 1, 2, 3, 4);
            Tensor lse = Tensor.allocate(DType.F32, 1, 2, 3, 1);
            out.fill(42f);
            lse.fill(42f);
            IllegalArgumentException e = assertThrows(
                    IllegalArgumentException.class, () -> Attention.mergeStatesInto(List.of(a, b), out, lse));
            assertTrue(e.getMessage().startsWith("partials[1].lse: "), e.getMessage());
            assertTrue(e.getMessage().contains("[0, 1, 2, 0]"), e.getMessage());
            for (float x : out.toFloatArray()) {
                assertEquals(42f, x, "out was written");
            }
            for (float x : lse.toFloatArray()) {
                assertEquals(42f, x, "lse was written");
            }
            assertThrows(IllegalArgumentException.class, () -> Attention.mergeStates(List.of(b)));
        }
    }

    /** A partial with lse -inf has no keys: the result is the other partial's, whatever the empty one's out holds. */
    @Test
    void anEmptyPartialHasWeightZero() {
        SplittableRandom rnd = new SplittableRandom(4);
        AttentionResult full = new AttentionResult(
                Tensors.random(rnd, DType.F32, 1, 2, 3, 4), Tensors.random(rnd, DType.F32, 1, 2, 3, 1));
        Tensor emptyOut = Tensor.allocate(DType.F32, 1, 2, 3, 4);
        emptyOut.fill(Float.NaN);
        Tensor emptyLse = Tensor.allocate(DType.F32, 1, 2, 3, 1);
        emptyLse.fill(Float.NEGATIVE_INFINITY);
        AttentionResult merged = Attention.mergeStates(List.of(new AttentionResult(emptyOut, emptyLse), full));
        org.junit.jupiter.api.Assertions.assertArrayEquals(
                full.out().toFloatArray(), merged.out().toFloatArray());
        org.junit.jupiter.api.Assertions.assertArrayEquals(
                full.lse().toFloatArray(), merged.lse().toFloatArray());
    }
}
