package dev.aule;

import dev.aule.mask.AttentionMask;
import dev.aule.mask.BlockMask;
import dev.aule.mask.MaskMod;
import dev.aule.mask.ScoreMod;
import dev.aule.spi.AttentionBackend;
import dev.aule.testing.BackwardCases.Case;
import dev.aule.testing.CaseFailures;
import dev.aule.testing.ForwardCase;
import dev.aule.testing.MaskCases;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Arrays;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The CPU forward with dense masks, biases, MaskMods, BlockMasks and ScoreMods against the float64
 * reference: random cases (every other option, GQA, layouts, 16-bit storage, masks that empty rows),
 * then each built-in against the option it reproduces.
 */
class MaskedForwardTest {
    private final AttentionBackend cpu = Backends.get("cpu");
    private final AttentionBackend reference = Backends.get("reference");

    @ParameterizedTest(name = "{3}")
    @CsvSource({"70000, 160, false, masked F32 cases", "80000, 60, true, masked F16/BF16 cases"})
    void randomMasksMatchTheReference(long firstSeed, int count, boolean halfPrecision, String what) {
        CaseFailures.assertRandomCasesPass(cpu, firstSeed, count, halfPrecision, MaskedForwardTest::masked, what);
    }

    /** Tile-sized and longer shapes where BlockMasks have empty, full and partial tiles, with GQA interleaving. */
    @Test
    void blockMasksAcrossTilesMatchTheReference() {
        CaseFailures failures = new CaseFailures();
        SplittableRandom rnd = new SplittableRandom(11);
        long seed = 90_000;
        for (int[] s : new int[][] {{256, 256, 1}, {200, 300, 2}, {129, 129, 4}, {70, 250, 8}, {1, 300, 4}}) {
            for (int kind = 0; kind < 7; kind++) {
                MaskMod mod = MaskCases.maskMod(rnd, s[0], s[1]);
                BlockMask blocks = BlockMask.of(mod, 2, 2 * s[2], s[0], s[1]);
                AttentionOptions options = AttentionOptions.builder()
                        .blockMask(blocks)
                        .causal(kind % 3 == 0)
                        .build();
                failures.check(
                        cpu, ForwardCase.of(seed++, new Case(DType.F32, 2, 2 * s[2], 2, s[0], s[1], 32, 32, options)));
            }
        }
        failures.assertNone("block-mask cases");
    }

    /** MaskMod.causal and slidingWindow give the same output as the causal and window options (Sq == Sk). */
    @Test
    void builtInMaskModsReproduceTheOptions() {
        SplittableRandom rnd = new SplittableRandom(5);
        int n = 150;
        Tensor q = Tensors.random(rnd, DType.F32, 1, 4, n, 32);
        Tensor k = Tensors.random(rnd, DType.F32, 1, 2, n, 32);
        Tensor v = Tensors.random(rnd, DType.F32, 1, 2, n, 32);
        assertSame(
                q,
                k,
                v,
                AttentionOptions.builder().causal(true).build(),
                AttentionOptions.builder()
                        .blockMask(BlockMask.of(MaskMod.causal(), n, n))
                        .build());
        assertSame(
                q,
                k,
                v,
                AttentionOptions.builder().causal(true).window(20, -1).build(),
                AttentionOptions.builder().maskMod(MaskMod.slidingWindow(20)).build());
        float[] slopes = {0.1f, 0.2f, 0.05f, 0.3f};
        assertSame(
                q,
                k,
                v,
                AttentionOptions.builder().softcap(2f).alibiSlopes(slopes).build(),
                AttentionOptions.builder()
                        .softcap(2f)
                        .scoreMod(ScoreMod.alibi(slopes))
                        .build());
        assertSame(
                q,
                k,
                v,
                AttentionOptions.builder().softcap(2f).build(),
                AttentionOptions.builder().scoreMod(ScoreMod.softcap(2f)).build());
    }

    /** A bias of -inf masks exactly like a false in the dense mask. */
    @Test
    void minusInfinityBiasMasksLikeTheMask() {
        SplittableRandom rnd = new SplittableRandom(8);
        int sq = 40;
        int sk = 90;
        boolean[] visible = new boolean[sq * sk];
        Tensor bias = Tensor.allocate(DType.F32, 1, 1, sq, sk);
        for (int x = 0; x < visible.length; x++) {
            visible[x] = rnd.nextInt(3) != 0;
            bias.set(0, 0, x / sk, x % sk, visible[x] ? 0f : Float.NEGATIVE_INFINITY);
        }
        Tensor q = Tensors.random(rnd, DType.F32, 2, 2, sq, 16);
        Tensor k = Tensors.random(rnd, DType.F32, 2, 2, sk, 16);
        Tensor v = Tensors.random(rnd, DType.F32, 2, 2, sk, 16);
        assertSame(
                q,
                k,
                v,
                AttentionOptions.builder()
                        .mask(AttentionMask.of(visible, 1, 1, sq, sk))
                        .build(),
                AttentionOptions.builder().bias(bias).build());
    }

    /** Rows a mask empties: out exactly 0, lse -inf, no NaN, also in split-KV decode shapes. */
    @Test
    void rowsWithNoVisibleKeyGiveZeroAndMinusInfinity() {
        SplittableRandom rnd = new SplittableRandom(13);
        for (int[] s : new int[][] {{5, 70}, {1, 4000}, {130, 130}}) {
            int sq = s[0];
            int sk = s[1];
            MaskMod evenRowsOnly = (b, h, i, j) -> i % 2 == 0;
            Tensor q = Tensors.random(rnd, DType.F32, 1, 4, sq, 16);
            Tensor k = Tensors.random(rnd, DType.F32, 1, 1, sk, 16);
            Tensor v = Tensors.random(rnd, DType.F32, 1, 1, sk, 16);
            for (AttentionOptions options : new AttentionOptions[] {
                AttentionOptions.builder().maskMod(evenRowsOnly).build(),
                AttentionOptions.builder()
                        .blockMask(BlockMask.of(evenRowsOnly, sq, sk))
                        .build(),
                AttentionOptions.builder()
                        .mask(AttentionMask.of(evenRowsOnly, 1, 1, sq, sk))
                        .build()
            }) {
                Tensor out = Tensor.allocate(DType.F32, 1, 4, sq, 16);
                Tensor lse = Tensor.allocate(DType.F32, 1, 4, sq, 1);
                out.fill(Float.NaN);
                lse.fill(Float.NaN);
                cpu.forward(q, k, v, out, lse, options);
                for (int h = 0; h < 4; h++) {
                    for (int i = 0; i < sq; i++) {
                        float rowLse = lse.get(0, h, i, 0);
                        if (i % 2 == 1) {
                            assertEquals(Float.NEGATIVE_INFINITY, rowLse, options + " row " + i);
                            for (int x = 0; x < 16; x++) {
                                assertEquals(0f, out.get(0, h, i, x), options + " row " + i);
                            }
                        } else {
                            assertTrue(Float.isFinite(rowLse), options + " row " + i);
                        }
                    }
                }
            }
        }
    }

    /** A BlockMask with b/h-dependent statuses (built per head) matches the MaskMod evaluated everywhere. */
    @Test
    void perHeadBlockMaskMatchesItsMaskMod() {
        SplittableRandom rnd = new SplittableRandom(21);
        int n = 160;
        MaskMod perHead = (b, h, i, j) -> h % 2 == 0 ? j <= i : (j / 64 == i / 64) || b == 1;
        Tensor q = Tensors.random(rnd, DType.F32, 2, 4, n, 16);
        Tensor k = Tensors.random(rnd, DType.F32, 2, 2, n, 16);
        Tensor v = Tensors.random(rnd, DType.F32, 2, 2, n, 16);
        BlockMask blocks = BlockMask.of(perHead, 2, 4, n, n);
        assertTrue(blocks.density() < 1, blocks.toString());
        assertSame(
                q,
                k,
                v,
                AttentionOptions.builder().maskMod(perHead).build(),
                AttentionOptions.builder().blockMask(blocks).build());
    }

    private void assertSame(Tensor q, Tensor k, Tensor v, AttentionOptions expected, AttentionOptions actual) {
        float[] a = run(cpu, q, k, v, expected);
        float[] b = run(cpu, q, k, v, actual);
        float[] r = run(reference, q, k, v, actual);
        double err = 0;
        double errRef = 0;
        double max = 1;
        for (int x = 0; x < a.length; x++) {
            err = Math.max(err, Math.abs(a[x] - b[x]));
            errRef = Math.max(errRef, Math.abs(r[x] - b[x]));
            max = Math.max(max, Math.abs(r[x]));
        }
        assertTrue(err / max < 1e-5, expected + " vs " + actual + ": " + err / max);
        assertTrue(errRef / max < 1e-5, "reference " + actual + ": " + errRef / max);
        assertArrayEquals(new boolean[0], new boolean[0]);
    }

    private static float[] run(AttentionBackend backend, Tensor q, Tensor k, Tensor v, AttentionOptions options) {
        Tensor out = Tensor.allocate(DType.F32, q.batch(), q.heads(), q.seqLen(), v.headDim());
        out.fill(Float.NaN);
        backend.forward(q, k, v, out, null, options);
        float[] data = out.toFloatArray();
        assertTrue(Arrays.stream(toDoubles(data)).noneMatch(Double::isNaN), backend.name() + " " + options);
        return data;
    }

    private static double[] toDoubles(float[] data) {
        double[] d = new double[data.length];
        for (int x = 0; x < data.length; x++) {
            d[x] = data[x];
        }
        return d;
    }

    private static ForwardCase masked(ForwardCase c) {
        SplittableRandom rnd = new SplittableRandom(c.seed() * 31 + 7);
        AttentionOptions options =
                MaskCases.add(rnd, c.options(), c.batch(), c.queryHeads(), c.queryLen(), c.keyLen(), false);
        return new ForwardCase(
                c.seed(),
                c.batch(),
                c.kvHeads(),
                c.group(),
                c.queryLen(),
                c.keyLen(),
                c.headDim(),
                c.valueDim(),
                c.qType(),
                c.kvType(),
                c.outType(),
                c.layouts(),
                c.stridedLse(),
                options);
    }
}
