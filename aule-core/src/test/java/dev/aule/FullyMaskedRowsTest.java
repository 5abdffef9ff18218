package dev.aule;

import dev.aule.spi.Accuracy;
import dev.aule.spi.Visibility;
import dev.aule.testing.Tensors;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Rows that see no key (semantics rule 7): out exactly 0 and lse exactly -inf, never NaN, on every
 * backend, with the rows that do see keys still right. Then the neighbouring cases that must not
 * be mistaken for masked rows.
 */
class FullyMaskedRowsTest {

    /** Bottom-right causal with Sq > Sk: row i sees keys j <= i - (Sq - Sk), so the first Sq - Sk rows see nothing. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("dev.aule.testing.BackendNames#available")
    void causalWithMoreQueriesThanKeysEmptiesTheFirstRows(String backend) {
        AttentionOptions causal = AttentionOptions.builder().causal(true).build();
        for (DType outType : DType.values()) {
            checkMaskedRows(backend, 2, 4, 2, 100, 30, 32, causal, outType, 70);
        }
        // GQA 8:1 tiles interleave query heads, so masked and unmasked rows share a tile.
        checkMaskedRows(backend, 1, 8, 1, 17, 3, 16, causal, DType.F32, 14);
        // Every option on: softcap, ALiBi and a scale must not turn an empty row into NaN.
        AttentionOptions all = AttentionOptions.builder()
                .causal(true)
                .softcap(5f)
                .scale(3f)
                .alibiSlopes(new float[] {0.5f, 0.25f, 0.125f, 0.0625f})
                .window(4, 2)
                .build();
        checkMaskedRows(backend, 1, 4, 4, 90, 7, 64, all, DType.BF16, 83);
    }

    /** A window around the diagonal with Sq > Sk: rows whose window lies left of key 0 see nothing. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("dev.aule.testing.BackendNames#available")
    void windowLeftOfTheFirstKeyEmptiesRows(String backend) {
        // Row i sees j in [i - 40 - 2, i - 40 + 1]: rows 0..38 see nothing.
        checkMaskedRows(
                backend,
                1,
                2,
                2,
                50,
                10,
                24,
                AttentionOptions.builder().window(2, 1).build(),
                DType.F32,
                39);
        // The diagonal alone: rows 0..(Sq - Sk - 1) see nothing; the rest see exactly one key.
        checkMaskedRows(
                backend,
                1,
                2,
                1,
                130,
                65,
                33,
                AttentionOptions.builder().window(0, 0).build(),
                DType.F16,
                65);
    }

    /**
     * Runs one case with outputs poisoned by NaN and checks: the first {@code emptyRows} rows of every
     * head are exactly 0 with lse -inf, and the whole output and lse match the reference.
     */
    private static void checkMaskedRows(
            String backendName,
            int b,
            int hq,
            int hkv,
            int sq,
            int sk,
            int d,
            AttentionOptions options,
            DType outType,
            int emptyRows) {
        String where = backendName + " " + options + " B " + b + " Hq " + hq + " Hkv " + hkv + " Sq " + sq + " Sk " + sk
                + " out " + outType;
        Visibility visibility = Visibility.of(sq, sk, options);
        for (int i = 0; i < sq; i++) {
            // The test's premise: exactly the first emptyRows rows are empty.
            assertEquals(i < emptyRows, visibility.count(i) == 0, where + ": premise at row " + i);
        }
        SplittableRandom rnd = new SplittableRandom(sq * 31L + sk);
        Tensor q = Tensors.random(rnd, DType.F32, b, hq, sq, d);
        Tensor k = Tensors.random(rnd, DType.F32, b, hkv, sk, d);
        Tensor v = Tensors.random(rnd, DType.F32, b, hkv, sk, d);
        Tensor out = Tensor.allocate(outType, b, hq, sq, d);
        Tensor lse = Tensor.allocate(DType.F32, b, hq, sq, 1);
        out.fill(Float.NaN);
        lse.fill(Float.NaN);
        Backends.get(backendName).forward(q, k, v, out, lse, options);

        for (int bi = 0; bi < b; bi++) {
            for (int h = 0; h < hq; h++) {
                for (int i = 0; i < emptyRows; i++) {
                    for (int x = 0; x < d; x++) {
                        float value = out.get(bi, h, i, x);
                        if (value != 0f) {
                            fail(where + ": empty row (" + bi + ", " + h + ", " + i + ") has out[" + x + "] = "
                                    + value);
                        }
                    }
                    assertEquals(
                            Float.NEGATIVE_INFINITY,
                            lse.get(bi, h, i, 0),
                            where + ": lse of empty row (" + bi + ", " + h + ", " + i + ")");
                }
            }
        }
        Tensor ref = Tensor.allocate(DType.F32, b, hq, sq, d);
        Tensor refLse = Tensor.allocate(DType.F32, b, hq, sq, 1);
        Backends.get("reference").forward(q, k, v, ref, refLse, options);
        double limit = outType == DType.F32 ? 1e-5 : 1e-2;
        double err = Accuracy.relativeError(out, ref);
        double lseErr = Accuracy.relativeError(lse, refLse);
        assertTrue(err < limit, () -> where + ": out error " + err);
        assertTrue(lseErr < 1e-5, () -> where + ": lse error " + lseErr);
    }

    /**
     * Not masked: when ALiBi pushes every visible logit of a row to about -5000, the row is still a
     * proper softmax (out a weighted mean of values, lse near -5000), not 0 and -inf.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("dev.aule.testing.BackendNames#available")
    void veryNegativeLogitsAreStillASoftmax(String backend) {
        SplittableRandom rnd = new SplittableRandom(5);
        // Sq > Sk, no mask: row 0's diagonal is key -50, so every key is at least 50 away; slope 100.
        Tensor q = Tensors.random(rnd, DType.F32, 1, 1, 60, 16);
        Tensor k = Tensors.random(rnd, DType.F32, 1, 1, 10, 16);
        Tensor v = Tensors.random(rnd, DType.F32, 1, 1, 10, 16);
        AttentionOptions options =
                AttentionOptions.builder().alibiSlopes(new float[] {100f}).build();
        AttentionResult result = forward(backend, q, k, v, options);
        float lse0 = result.lse().get(0, 0, 0, 0);
        assertTrue(lse0 < -4000 && lse0 > -6000, "lse of row 0: " + lse0);
        Tensor ref = Tensor.allocate(DType.F32, 1, 1, 60, 16);
        Tensor refLse = Tensor.allocate(DType.F32, 1, 1, 60, 1);
        Backends.get("reference").forward(q, k, v, ref, refLse, options);
        assertTrue(Accuracy.relativeError(result.out(), ref) < 1e-5, "out");
        assertTrue(Accuracy.relativeError(result.lse(), refLse) < 1e-5, "lse");
    }

    /**
     * Keys a row cannot see must not influence it, whatever they hold: NaN and infinity in a masked key
     * (an unwritten cache slot, say) leave every other row equal to the reference, which never reads it.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("dev.aule.testing.BackendNames#available")
    void nonFiniteKeysOutsideTheMaskDoNotLeak(String backend) {
        checkPoisonedLastKey(backend);
    }

    // Values get no such promise: inside a tile a masked key's probability is an exact 0, and
    // 0 * NaN is NaN, as in every fused kernel (and a plain P V product). docs/DESIGN.md says so.

    /**
     * Causal window (3, 0): row i sees keys i-3..i, so the last key is visible to rows 16..19 only. It
     * shares a key block with the keys rows 0..15 see. Poisons that key's k row with NaN and
     * infinities and checks rows 0..15 against the reference.
     */
    private static void checkPoisonedLastKey(String backend) {
        SplittableRandom rnd = new SplittableRandom(9);
        int sq = 20;
        int sk = 20;
        Tensor q = Tensors.random(rnd, DType.F32, 1, 2, sq, 16);
        Tensor k = Tensors.random(rnd, DType.F32, 1, 2, sk, 16);
        Tensor v = Tensors.random(rnd, DType.F32, 1, 2, sk, 16);
        for (int h = 0; h < 2; h++) {
            for (int x = 0; x < 16; x++) {
                k.set(
                        0,
                        h,
                        sk - 1,
                        x,
                        x % 3 == 0 ? Float.NaN : x % 3 == 1 ? Float.POSITIVE_INFINITY : Float.NEGATIVE_INFINITY);
            }
        }
        AttentionOptions options =
                AttentionOptions.builder().causal(true).window(3, 0).build();
        AttentionResult result = forward(backend, q, k, v, options);
        Tensor ref = Tensor.allocate(DType.F32, 1, 2, sq, 16);
        Backends.get("reference").forward(q, k, v, ref, null, options);
        for (int h = 0; h < 2; h++) {
            for (int i = 0; i < sk - 4; i++) {
                for (int x = 0; x < 16; x++) {
                    float got = result.out().get(0, h, i, x);
                    float want = ref.get(0, h, i, x);
                    assertTrue(
                            Math.abs(got - want) < 1e-5,
                            backend + ": row " + i + " head " + h + " out[" + x + "] = " + got + ", reference " + want);
                }
            }
        }
    }

    private static AttentionResult forward(String backend, Tensor q, Tensor k, Tensor v, AttentionOptions options) {
        Tensor out = Tensor.allocate(DType.F32, q.batch(), q.heads(), q.seqLen(), v.headDim());
        Tensor lse = Tensor.allocate(DType.F32, q.batch(), q.heads(), q.seqLen(), 1);
        out.fill(Float.NaN);
        lse.fill(Float.NaN);
        Backends.get(backend).forward(q, k, v, out, lse, options);
        return new AttentionResult(out, lse);
    }
}
