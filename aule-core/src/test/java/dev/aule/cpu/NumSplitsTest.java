package dev.aule.cpu;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.Visibility;
import dev.aule.testing.ForkedJvm;
import dev.aule.testing.Forwards;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The {@code numSplits} option: exactly {@code min(n, keys, MAX_SPLITS)} key-range parts per tile, exact against the
 * reference for every n, 1 the unsplit plan, and the bits a function of the option and the sequence alone (the
 * same in any batch and on 1 or 2 threads).
 */
class NumSplitsTest {
    private static final int D = 64;

    @Test
    void everyNumSplitsMatchesTheReferenceOnDecodeShapes() {
        SplittableRandom rnd = new SplittableRandom(3);
        AttentionOptions[] bases = {
            AttentionOptions.defaults(),
            AttentionOptions.builder().causal(true).build(),
            AttentionOptions.builder().causal(true).window(200, -1).build(),
            AttentionOptions.builder()
                    .softcap(5f)
                    .alibiSlopes(new float[] {0.01f, 0.02f, 0.05f, 0.1f})
                    .build(),
        };
        int[][] shapes = { // {Hq, Hkv, Sq, Sk, D}: decode and short speculative chunks; Sk 5 has fewer keys than parts
            {4, 1, 1, 2500, 64}, {4, 2, 1, 700, 32}, {4, 4, 2, 1537, 80}, {4, 2, 3, 300, 16}, {4, 1, 1, 5, 8}
        };
        CpuBackend cpu = new CpuBackend();
        for (int[] s : shapes) {
            Tensor q = Tensors.random(rnd, DType.F32, 2, s[0], s[2], s[4]);
            Tensor k = Tensors.random(rnd, DType.F32, 2, s[1], s[3], s[4]);
            Tensor v = Tensors.random(rnd, DType.F32, 2, s[1], s[3], s[4]);
            int[] lens = {s[3], Math.max(1, s[3] / 3)};
            for (AttentionOptions base : bases) {
                for (int n = 0; n <= 8; n++) {
                    AttentionOptions options = base.toBuilder().numSplits(n).build();
                    String where = Arrays.toString(s) + " " + options;
                    Forwards.Errors dense = Forwards.againstReference(
                            cpu, (b, out, lse) -> b.forward(q, k, v, out, lse, options), 2, s[0], s[2], s[4]);
                    assertTrue(dense.out() < 1e-5 && dense.lse() < 1e-5, "forward " + dense + " " + where);
                    Forwards.Errors cached = Forwards.againstReference(
                            cpu,
                            (b, out, lse) -> b.forwardCached(q, k, v, lens, out, lse, options),
                            2,
                            s[0],
                            s[2],
                            s[4]);
                    assertTrue(cached.out() < 1e-5 && cached.lse() < 1e-5, "cached " + cached + " " + where);
                }
            }
        }
    }

    @Test
    void thePlanTakesExactlyTheRequestedParts() {
        Visibility decode = new Visibility(1, 8192, -1, 0);
        ForwardPlan auto = ForwardPlan.of(4, 8, 128, 128, decode);
        assertEquals(8, auto.splits());
        assertEquals(auto, ForwardPlan.of(4, 8, 128, 128, decode, 0), "0 is the planned split");
        for (int n = 1; n <= 8; n++) {
            assertEquals(n, ForwardPlan.of(4, 8, 128, 128, decode, n).splits(), "n " + n);
        }
        assertEquals(
                TileConfig.MAX_SPLITS,
                ForwardPlan.of(4, 8, 128, 128, decode, 1000).splits(),
                "the cap");
        assertEquals(
                3,
                ForwardPlan.of(4, 8, 128, 128, new Visibility(1, 3, -1, 0), 8).splits(),
                "the keys");
        assertEquals(
                1,
                ForwardPlan.of(4, 8, 128, 128, new Visibility(1, 0, -1, 0), 8).splits(),
                "no keys: one");
        // Many tiles are never split by the plan, but are when asked; the tiles themselves do not change.
        Visibility prefill = new Visibility(2048, 100_000, -1, 0);
        ForwardPlan unsplit = ForwardPlan.of(8192, 8, 128, 128, prefill);
        assertEquals(1, unsplit.splits());
        ForwardPlan asked = ForwardPlan.of(8192, 8, 128, 128, prefill, 3);
        assertEquals(3, asked.splits());
        assertEquals(unsplit.tileRows(), asked.tileRows());
        assertEquals(unsplit.tiles(), asked.tiles());
        // ... up to what the bound on partial outputs holds: 256 tiles x 256 rows x 128 floats per part.
        assertEquals(
                ForwardPlan.MAX_PARTIAL_FLOATS / (256L * 256 * 128),
                ForwardPlan.of(8192, 8, 128, 128, prefill, 256).splits());
        assertEquals(8, ForwardPlan.of(8192, 8, 128, 128, prefill, 256).splits());
        // The widest row counts: a window of 1500 keys caps at 1500 parts, not the 100000 keys of the sequence.
        assertEquals(
                TileConfig.MAX_SPLITS,
                ForwardPlan.of(4, 8, 128, 128, new Visibility(1, 100_000, 1500, 0), 300)
                        .splits());
        assertEquals(
                2,
                ForwardPlan.of(4, 8, 128, 128, new Visibility(1, 100_000, 1, 0), 300)
                        .splits());
        assertEquals(1, ForwardPlan.requestedSplits(1, 1 << 20));
    }

    /**
     * numSplits 1 is the plan without a split: on a shape the planner leaves unsplit it gives the default's bits, and
     * on one it splits, the planner's own count gives the default's bits too.
     */
    @Test
    void oneIsTheUnsplitPlanAndThePlannedCountIsTheDefault() {
        SplittableRandom rnd = new SplittableRandom(4);
        CpuBackend cpu = new CpuBackend();
        AttentionOptions causal = AttentionOptions.builder().causal(true).build();
        int lanes = TileMaths.best().lanes();
        for (int keys : new int[] {900, 4096}) {
            Tensor q = Tensors.random(rnd, DType.F32, 1, 8, 1, D);
            Tensor k = Tensors.random(rnd, DType.F32, 1, 2, keys, D);
            Tensor v = Tensors.random(rnd, DType.F32, 1, 2, keys, D);
            int dp = Math.ceilDiv(D, lanes) * lanes;
            ForwardPlan plan = ForwardPlan.of(4, 2, dp, dp, Visibility.of(1, keys, causal));
            assertEquals(keys <= TileConfig.SPLIT_KEYS ? 1 : 4, plan.splits(), "keys " + keys);
            assertEquals(
                    1,
                    ForwardPlan.of(4, 2, dp, dp, Visibility.of(1, keys, causal), 1)
                            .splits());
            float[] planned = run(cpu, q, k, v, causal);
            float[] same = run(
                    cpu, q, k, v, causal.toBuilder().numSplits(plan.splits()).build());
            assertArrayEquals(planned, same, "the planned count, keys " + keys);
            float[] one = run(cpu, q, k, v, causal.toBuilder().numSplits(1).build());
            if (plan.splits() == 1) {
                assertArrayEquals(planned, one, "unsplit, keys " + keys);
            } else {
                // Another order of the sums: exact, but (on these random rows) not the same bits.
                assertNotEquals(Arrays.hashCode(planned), Arrays.hashCode(one), "keys " + keys);
            }
        }
    }

    /** A sequence's bits with an explicit numSplits are the same alone and in any batch of a cached call. */
    @Test
    void anExplicitSplitIsBatchInvariant() {
        SplittableRandom rnd = new SplittableRandom(5);
        CpuBackend cpu = new CpuBackend();
        Tensor k = Tensors.random(rnd, DType.F32, 3, 2, 2500, D);
        Tensor v = Tensors.random(rnd, DType.F32, 3, 2, 2500, D);
        Tensor q = Tensors.random(rnd, DType.F32, 3, 8, 1, D);
        int[] lens = {2500, 40, 1800};
        for (int n : new int[] {2, 3, 7}) {
            AttentionOptions options =
                    AttentionOptions.builder().causal(true).numSplits(n).build();
            Tensor batched = Tensor.allocate(DType.F32, 3, 8, 1, D);
            cpu.forwardCached(q, k, v, lens, batched, null, options);
            for (int b = 0; b < 3; b++) {
                Tensor alone = Tensor.allocate(DType.F32, 1, 8, 1, D);
                cpu.forward(
                        q.sequence(b, 0, 1),
                        k.sequence(b, 0, lens[b]),
                        v.sequence(b, 0, lens[b]),
                        alone,
                        null,
                        options);
                assertArrayEquals(
                        alone.toFloatArray(), batched.sequence(b, 0, 1).toFloatArray(), "n " + n + " b " + b);
            }
        }
    }

    /** JVMs with pools of 1 and 2 threads print the hash of this JVM's run of the same workload. */
    @Test
    void oneAndTwoThreadsGiveTheSameBits() throws Exception {
        // The forked JVM gets this JVM's class path; on the module path (its own execution) it would find no classes.
        Assumptions.assumeFalse(Boolean.getBoolean("aule.test.modulePath"), "forks from the class path only");
        String expected = String.format(Locale.ROOT, "HASH %016x", NumSplitsWorkloadMain.hash());
        for (int threads : new int[] {1, 2}) {
            List<String> flags = new ArrayList<>();
            if (ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent()) {
                flags.add("--add-modules");
                flags.add("jdk.incubator.vector");
            }
            String bits = System.getProperty("aule.cpu.vectorBits");
            if (bits != null) {
                flags.add("-Daule.cpu.vectorBits=" + bits);
            }
            flags.add("-Daule.cpu.threads=" + threads);
            ForkedJvm.Result result = ForkedJvm.run(flags, NumSplitsWorkloadMain.class, Duration.ofMinutes(2));
            assertEquals(0, result.exitCode(), result::transcript);
            assertEquals(expected, result.stdout().strip(), "threads " + threads);
        }
    }

    @Test
    void aNegativeCountIsRejectedAndTheOptionIsKept() {
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class, () -> AttentionOptions.builder().numSplits(-1));
        assertTrue(e.getMessage().startsWith("numSplits: "), e.getMessage());
        AttentionOptions three = AttentionOptions.builder().numSplits(3).build();
        assertEquals(3, three.numSplits());
        assertEquals(0, AttentionOptions.defaults().numSplits());
        assertEquals(three, three.toBuilder().build());
        assertEquals(three.hashCode(), three.toBuilder().build().hashCode());
        assertNotEquals(three, AttentionOptions.defaults());
        assertTrue(three.toString().contains("numSplits 3"), three.toString());
    }

    /**
     * A dense call holds every batch entry's partial states at once: a batch whose split states pass the bound is
     * refused naming q before anything is written, not failed part-way by an arithmetic overflow.
     */
    @Test
    void aBatchWhosePartialStatesPassTheBoundIsRefused() {
        int heads = 8;
        int rows = 4096;
        int d = 128;
        AttentionOptions options = AttentionOptions.builder().numSplits(256).build();
        ForwardPlan plan = ForwardPlan.of(rows, heads, d, d, Visibility.of(rows, 256, options), 256);
        long perSequence = (long) heads * plan.tiles() * plan.splits() * Math.min(plan.tileRows(), rows) * d;
        assertTrue(perSequence <= ForwardPlan.MAX_PARTIAL_FLOATS, "one sequence fits: " + perSequence);
        assertTrue(2 * perSequence > ForwardPlan.MAX_PARTIAL_FLOATS, "two do not: " + perSequence);
        SplittableRandom rnd = new SplittableRandom(4);
        Tensor q = Tensors.random(rnd, DType.F32, 2, heads, rows, d);
        Tensor k = Tensors.random(rnd, DType.F32, 2, heads, 256, d);
        Tensor out = Tensor.allocate(DType.F32, 2, heads, rows, d);
        out.fill(Float.NaN);
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class, () -> new CpuBackend().forward(q, k, k, out, null, options));
        assertTrue(e.getMessage().startsWith("q: a batch of 2"), e.getMessage());
        for (float x : out.sequence(0, 0, 1).toFloatArray()) {
            assertTrue(Float.isNaN(x), "nothing written");
        }
    }

    private static float[] run(CpuBackend cpu, Tensor q, Tensor k, Tensor v, AttentionOptions options) {
        Tensor out = Tensor.allocate(DType.F32, q.batch(), q.heads(), q.seqLen(), v.headDim());
        Tensor lse = Tensor.allocate(DType.F32, q.batch(), q.heads(), q.seqLen(), 1);
        cpu.forward(q, k, v, out, lse, options);
        float[] o = out.toFloatArray();
        float[] l = lse.toFloatArray();
        float[] both = Arrays.copyOf(o, o.length + l.length);
        System.arraycopy(l, 0, both, o.length, l.length);
        return both;
    }
}
