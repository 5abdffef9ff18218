package dev.aule.serving;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.cpu.CpuBackend;
import dev.aule.spi.QuantizedKv;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The row flags of an FP8 pool ({@link QuantizedKv#keyRowsAbnormal}): one bit per slot, set exactly while the slot's
 * last written row holds a code that is not a normal number, copied with the block, and never changing an attention
 * result.
 */
class QuantizedRowFlagsTest {
    private static final int HEADS = 2;
    private static final int BLOCKS = 6;
    private static final int DIM = 16;

    private static QuantizedPool pool(KvFormat format, int blockSize) {
        return new QuantizedPool(format, BLOCKS, blockSize, HEADS, DIM, DIM, new float[] {1f}, new float[] {1f});
    }

    /** Rows of magnitude 0.5 to 2, normal in both FP8 formats at a scale of 1, one element set to {@code odd}. */
    private static float[] rows(SplittableRandom rnd, int n, float odd) {
        float[] rows = new float[n * DIM];
        for (int i = 0; i < rows.length; i++) {
            rows[i] = (float) (rnd.nextDouble(0.5, 2) * (rnd.nextBoolean() ? 1 : -1));
        }
        if (!Float.isNaN(odd)) {
            rows[rnd.nextInt(rows.length)] = odd;
        }
        return rows;
    }

    private static boolean flag(long[] flags, int blockSize, int head, int block, int slot) {
        int word = (head * BLOCKS + block) * QuantizedKv.flagWords(blockSize) + slot / 64;
        return (flags[word] & 1L << (slot % 64)) != 0;
    }

    /** {@code view}'s pool with these tables, lengths and flags (null: none, so the kernels scan). */
    private static QuantizedKv withFlags(
            QuantizedKv view, int[][] tables, int[] lens, long[] keyFlags, long[] valueFlags) {
        return new QuantizedKv(
                view.format(),
                view.numBlocks(),
                view.blockSize(),
                view.kvHeads(),
                view.headDim(),
                view.valueDim(),
                view.keyCodes(),
                view.valueCodes(),
                view.keyScales(),
                view.valueScales(),
                tables,
                lens,
                keyFlags,
                valueFlags);
    }

    @Test
    void eachSlotsFlagFollowsItsLastWrittenRow() {
        SplittableRandom rnd = new SplittableRandom(3);
        for (KvFormat format : new KvFormat[] {KvFormat.FP8_E4M3, KvFormat.FP8_E5M2}) {
            for (int blockSize : new int[] {4, 80}) {
                QuantizedPool pool = pool(format, blockSize);
                String where = format + ", blocks of " + blockSize;
                assertTrue(flag(pool.keyAbnormal, blockSize, 0, 0, 0), where + ": a fresh pool's zero codes");
                pool.write(true, 1, 2, 0, rows(rnd, 2, Float.NaN), 0, 2);
                assertFalse(flag(pool.keyAbnormal, blockSize, 1, 2, 0), where);
                assertFalse(flag(pool.keyAbnormal, blockSize, 1, 2, 1), where);
                assertTrue(flag(pool.valueAbnormal, blockSize, 1, 2, 0), where + ": values are flagged apart");
                pool.write(true, 1, 2, 2, rows(rnd, 1, 1e-9f), 0, 1); // a zero or subnormal code
                assertTrue(flag(pool.keyAbnormal, blockSize, 1, 2, 2), where);
                assertFalse(flag(pool.keyAbnormal, blockSize, 1, 2, 1), where + ": the row before keeps its flag");
                pool.write(true, 1, 2, 3, rows(rnd, 1, Float.NaN), 0, 1);
                assertTrue(flag(pool.keyAbnormal, blockSize, 1, 2, 2), where + ": a later row leaves it");
                assertFalse(flag(pool.keyAbnormal, blockSize, 1, 2, 3), where);
                pool.write(true, 1, 2, 2, rows(rnd, 1, Float.NaN), 0, 1);
                assertFalse(flag(pool.keyAbnormal, blockSize, 1, 2, 2), where + ": the slot written again");
                if (blockSize > 64) { // the second word of a block
                    pool.write(true, 1, 2, 70, rows(rnd, 1, 0f), 0, 1);
                    assertTrue(flag(pool.keyAbnormal, blockSize, 1, 2, 70), where);
                    pool.write(true, 1, 2, 63, rows(rnd, 2, Float.NaN), 0, 2);
                    assertFalse(flag(pool.keyAbnormal, blockSize, 1, 2, 63), where);
                    assertFalse(flag(pool.keyAbnormal, blockSize, 1, 2, 64), where);
                }
                pool.copyBlock(2, 5);
                for (int slot = 0; slot < blockSize; slot++) {
                    assertEquals(
                            flag(pool.keyAbnormal, blockSize, 1, 2, slot),
                            flag(pool.keyAbnormal, blockSize, 1, 5, slot),
                            where + ": copied slot " + slot);
                }
                assertTrue(flag(pool.keyAbnormal, blockSize, 0, 5, 0), where + ": head 0's block 2 was never written");
            }
        }
        assertNull(pool(KvFormat.INT8, 4).keyAbnormal, "INT8 has no flags");
    }

    @Test
    void randomWritesKeepEveryFlagExact() {
        SplittableRandom rnd = new SplittableRandom(7);
        for (KvFormat format : new KvFormat[] {KvFormat.FP8_E4M3, KvFormat.FP8_E5M2}) {
            for (int blockSize : new int[] {4, 70}) {
                QuantizedPool pool = pool(format, blockSize);
                for (int step = 0; step < 300; step++) {
                    int head = rnd.nextInt(HEADS);
                    int block = rnd.nextInt(BLOCKS);
                    int slot = rnd.nextInt(blockSize);
                    int n = 1 + rnd.nextInt(Math.min(8, blockSize - slot));
                    float odd = rnd.nextInt(6) == 0 ? (rnd.nextBoolean() ? 0f : 3e-6f) : Float.NaN;
                    boolean key = rnd.nextBoolean();
                    pool.write(key, head, block, slot, rows(rnd, n, odd), 0, n);
                    if (rnd.nextInt(10) == 0) {
                        pool.copyBlock(block, rnd.nextInt(BLOCKS));
                    }
                }
                for (int head = 0; head < HEADS; head++) {
                    for (int block = 0; block < BLOCKS; block++) {
                        for (int slot = 0; slot < blockSize; slot++) {
                            boolean normal = true;
                            for (int x = 0; x < DIM; x++) { // QuantizedKv.keyCode's layout
                                normal &= pool.code.isNormal(
                                        pool.keyCodes[((head * BLOCKS + block) * DIM + x) * blockSize + slot]);
                            }
                            assertEquals(
                                    !normal,
                                    flag(pool.keyAbnormal, blockSize, head, block, slot),
                                    format + ", blocks of " + blockSize + ": head " + head + " block " + block
                                            + " slot " + slot);
                        }
                    }
                }
            }
        }
    }

    @Test
    void flaggedAndUnflaggedCallsGiveTheSameBits() {
        SplittableRandom rnd = new SplittableRandom(11);
        CpuBackend cpu = new CpuBackend();
        for (KvFormat format : new KvFormat[] {KvFormat.FP8_E4M3, KvFormat.FP8_E5M2}) {
            // Blocks of 80: the kernels' runs of up to 64 keys start inside a block and cross its flag words.
            for (int blockSize : new int[] {4, 80}) {
                QuantizedPool pool = pool(format, blockSize);
                for (int h = 0; h < HEADS; h++) {
                    for (int b = 0; b < BLOCKS; b++) {
                        for (int slot = 0; slot < blockSize; slot++) {
                            // About one row in eight holds a zero or subnormal code, one in forty a run of them.
                            float odd = rnd.nextInt(8) == 0 ? 1e-9f : Float.NaN;
                            pool.write(true, h, b, slot, rows(rnd, 1, odd), 0, 1);
                            pool.write(false, h, b, slot, rows(rnd, 1, odd), 0, 1);
                        }
                    }
                }
                int[][] tables = {{0, 1, 2, 3, 4, 5}, {5, 4, 1}};
                int[] lens = {BLOCKS * blockSize, 3 * blockSize - 1};
                QuantizedKv flagged = pool.view(tables, lens);
                QuantizedKv unflagged = withFlags(flagged, tables, lens, null, null);
                for (int queries : new int[] {1, 5}) {
                    Tensor q = Tensors.random(rnd, DType.F32, 2, HEADS * 4, queries, DIM);
                    AttentionOptions options =
                            AttentionOptions.builder().causal(true).build();
                    Tensor a = Tensor.allocate(DType.F32, 2, HEADS * 4, queries, DIM);
                    Tensor b = Tensor.allocate(DType.F32, 2, HEADS * 4, queries, DIM);
                    cpu.forwardQuantized(q, flagged, a, null, options);
                    cpu.forwardQuantized(q, unflagged, b, null, options);
                    assertArrayEquals(
                            b.toFloatArray(),
                            a.toFloatArray(),
                            format + ", blocks of " + blockSize + ", " + queries + " queries");
                }
            }
        }
    }

    /**
     * Flags cleared over codes that are not normal cost only the answer: the call returns (the in-place kernels read
     * such a code as another finite number), and the next call with the pool's own flags gives its usual bits.
     */
    @Test
    void wrongFlagsCostOnlyTheAnswer() {
        SplittableRandom rnd = new SplittableRandom(5);
        QuantizedPool pool = pool(KvFormat.FP8_E5M2, 4);
        pool.write(true, 0, 0, 0, rows(rnd, 4, 0f), 0, 4);
        pool.write(false, 0, 0, 0, rows(rnd, 4, 0f), 0, 4);
        QuantizedKv view = pool.view(new int[][] {{0}}, new int[] {4});
        long[] clear = new long[HEADS * BLOCKS];
        QuantizedKv lying = withFlags(view, view.blockTables(), view.contextLens(), clear, clear);
        QuantizedKv unflagged = withFlags(view, view.blockTables(), view.contextLens(), null, null);
        Tensor q = Tensors.random(rnd, DType.F32, 1, HEADS, 1, DIM);
        AttentionOptions options = AttentionOptions.builder().build();
        CpuBackend cpu = new CpuBackend();
        cpu.forwardQuantized(q, lying, Tensor.allocate(DType.F32, 1, HEADS, 1, DIM), null, options);
        Tensor a = Tensor.allocate(DType.F32, 1, HEADS, 1, DIM);
        Tensor b = Tensor.allocate(DType.F32, 1, HEADS, 1, DIM);
        cpu.forwardQuantized(q, view, a, null, options);
        cpu.forwardQuantized(q, unflagged, b, null, options);
        assertArrayEquals(b.toFloatArray(), a.toFloatArray());
    }

    @Test
    void flagsOfTheWrongLengthOrForInt8AreRefused() {
        QuantizedPool pool = pool(KvFormat.FP8_E4M3, 80);
        QuantizedKv good = pool.view(new int[][] {{0}}, new int[] {1});
        // Blocks of 80 take two words each.
        QuantizedKv shortFlags =
                withFlags(good, good.blockTables(), good.contextLens(), new long[HEADS * BLOCKS], null);
        Tensor q = Tensor.allocate(DType.F32, 1, HEADS, 1, DIM);
        Tensor out = Tensor.allocate(DType.F32, 1, HEADS, 1, DIM);
        AttentionOptions options = AttentionOptions.builder().build();
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class,
                () -> new CpuBackend().forwardQuantized(q, shortFlags, out, null, options));
        assertEquals(
                "keyRowsAbnormal: length 12 must be Hkv * numBlocks * ceil(blockSize / 64) = 24 for the cache's"
                        + " geometry",
                e.getMessage());
        QuantizedPool int8 = pool(KvFormat.INT8, 4);
        QuantizedKv int8View = int8.view(new int[][] {{0}}, new int[] {1});
        QuantizedKv int8Flags =
                withFlags(int8View, int8View.blockTables(), int8View.contextLens(), null, new long[HEADS * BLOCKS]);
        e = assertThrows(
                IllegalArgumentException.class,
                () -> new CpuBackend().forwardQuantized(q, int8Flags, out, null, options));
        assertTrue(e.getMessage().startsWith("valueRowsAbnormal: given only for FP8"), e.getMessage());
        assertEquals(0f, out.toFloatArray()[0], "nothing written");
    }
}
