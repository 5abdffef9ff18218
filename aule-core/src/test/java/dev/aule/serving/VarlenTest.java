package dev.aule.serving;

import dev.aule.Attention;
import dev.aule.AttentionOptions;
import dev.aule.AttentionResult;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.AttentionBackend;
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
            int sequences = 1 + rnd.nextInt(5);
            int kvHeads = 1 + rnd.nextInt(2);
            int group = new int[] {1, 2, 4}[rnd.nextInt(3)];
            int d = new int[] {16, 32, 64, 7}[rnd.nextInt(4)];
            int dv = rnd.nextInt(4) == 0 ? 12 : d;
            boolean selfAttention = rnd.nextBoolean(); // prefill: the same lengths for q and k
            int[] cuQ = new int[sequences + 1];
            int[] cuK = new int[sequences + 1];
            for (int s = 0; s < sequences; s++) {
                int rows = rnd.nextInt(6) == 0 ? 0 : 1 + rnd.nextInt(90);
                int keys = selfAttention ? rows : rnd.nextInt(6) == 0 ? 0 : 1 + rnd.nextInt(90);
                cuQ[s + 1] = cuQ[s] + rows;
                cuK[s + 1] = cuK[s] + keys;
            }
            if (cuQ[sequences] == 0 || cuK[sequences] == 0) {
                continue; // a tensor needs at least one row
            }
            DType dtype = new DType[] {DType.F32, DType.F16, DType.BF16}[(int) (seed % 3)];
            // The THD layout of packed engines: [totalTokens, heads, headDim] in memory.
            Tensor q = Tensors.random(rnd, dtype, 1, kvHeads * group, cuQ[sequences], d);
            Tensor k = Tensors.random(rnd, dtype, 1, kvHeads, cuK[sequences], d);
            Tensor v = Tensors.random(rnd, dtype, 1, kvHeads, cuK[sequences], dv);
            AttentionOptions options = ForwardCase.randomOptions(rnd, kvHeads * group, 90);
            for (AttentionBackend backend : new AttentionBackend[] {Backends.get("cpu"), Backends.get("reference")}) {
                Tensor out = Oracle.poisoned(dtype, 1, q.heads(), cuQ[sequences], dv);
                Tensor lse = Oracle.poisoned(DType.F32, 1, q.heads(), cuQ[sequences], 1);
                backend.forwardVarlen(q, k, v, cuQ, cuK, out, lse, options);
                for (int s = 0; s < sequences; s++) {
                    int rows = cuQ[s + 1] - cuQ[s];
                    int keys = cuK[s + 1] - cuK[s];
                    if (rows == 0) {
                        continue;
                    }
                    Tensor qs = q.sequence(0, cuQ[s], rows);
                    Tensor ks = keys == 0 ? null : k.sequence(0, cuK[s], keys);
                    Tensor vs = keys == 0 ? null : v.sequence(0, cuK[s], keys);
                    AttentionResult ref = Oracle.forward(qs, ks, vs, dv, options);
                    Oracle.assertMatches(
                            out.sequence(0, cuQ[s], rows),
                            lse.sequence(0, cuQ[s], rows),
                            ref,
                            qs,
                            ks,
                            options,
                            backend.name() + " seed " + seed + " sequence " + s + " cuQ " + Arrays.toString(cuQ)
                                    + " cuK " + Arrays.toString(cuK) + " " + options);
                }
            }
        }
    }

    @Test
    void keysOfOtherSequencesNeverInfluenceARow() {
        SplittableRandom rnd = new SplittableRandom(8);
        Tensor q = Tensors.random(rnd, DType.F32, 1, 2, 10, 16);
        Tensor k = Tensors.random(rnd, DType.F32, 1, 2, 10, 16);
        Tensor v = Tensors.random(rnd, DType.F32, 1, 2, 10, 16);
        int[] cu = {0, 4, 10};
        AttentionOptions causal = AttentionOptions.builder().causal(true).build();
        AttentionResult before = Attention.forwardVarlen(q, k, v, cu, cu, causal);
        for (int j = 4; j < 10; j++) { // overwrite the second sequence's keys and values
            for (int x = 0; x < 16; x++) {
                k.set(0, 0, j, x, 1000f);
                v.set(0, 1, j, x, -1000f);
            }
        }
        AttentionResult after = Attention.forwardVarlen(q, k, v, cu, cu, causal);
        float[] a = before.out().sequence(0, 0, 4).toFloatArray();
        float[] b = after.out().sequence(0, 0, 4).toFloatArray();
        assertArrayEquals(a, b);
    }

    @Test
    void badOffsetsAreRejectedBeforeAnyWrite() {
        SplittableRandom rnd = new SplittableRandom(9);
        Tensor q = Tensors.random(rnd, DType.F32, 1, 2, 10, 8);
        Tensor k = Tensors.random(rnd, DType.F32, 1, 2, 12, 8);
        Tensor v = Tensors.random(rnd, DType.F32, 1, 2, 12, 8);
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
                        () -> backend.forwardVarlen(q, k, v, c[0], c[1], out, null, AttentionOptions.defaults()));
                assertTrue(e.getMessage().startsWith(argument[i]), argument[i] + " expected: " + e.getMessage());
                assertTrue(Oracle.allNaN(out), "nothing written");
            }
            Tensor q2 = Tensors.random(rnd, DType.F32, 2, 2, 5, 8);
            assertThrows(
                    IllegalArgumentException.class,
                    () -> backend.forwardVarlen(
                            q2,
                            k.sequence(0, 0, 12),
                            v,
                            new int[] {0, 5},
                            new int[] {0, 12},
                            Oracle.poisoned(DType.F32, 2, 2, 5, 8),
                            null,
                            AttentionOptions.defaults()));
        }
    }

    @Test
    void masksAndScoreModsAreRejectedByEveryServingCall() {
        SplittableRandom rnd = new SplittableRandom(10);
        Tensor q = Tensors.random(rnd, DType.F32, 1, 2, 4, 8);
        Tensor k = Tensors.random(rnd, DType.F32, 1, 2, 4, 8);
        Tensor v = Tensors.random(rnd, DType.F32, 1, 2, 4, 8);
        AttentionOptions masked = AttentionOptions.builder()
                .maskMod(dev.aule.mask.MaskMod.causal())
                .build();
        for (AttentionBackend backend : new AttentionBackend[] {Backends.get("cpu"), Backends.get("reference")}) {
            Tensor out = Oracle.poisoned(DType.F32, 1, 2, 4, 8);
            String varlen = assertThrows(
                            IllegalArgumentException.class,
                            () -> backend.forwardVarlen(q, k, v, new int[] {0, 4}, new int[] {0, 4}, out, null, masked))
                    .getMessage();
            String cached = assertThrows(
                            IllegalArgumentException.class,
                            () -> backend.forwardCached(q, k, v, new int[] {4}, out, null, masked))
                    .getMessage();
            String paged = assertThrows(
                            IllegalArgumentException.class,
                            () -> backend.forwardPaged(q, k, v, new int[][] {{0}}, new int[] {4}, out, null, masked))
                    .getMessage();
            for (String message : new String[] {varlen, cached, paged}) {
                assertTrue(message.startsWith("options: masks"), message);
            }
            assertTrue(Oracle.allNaN(out), "nothing written");
        }
    }
}
