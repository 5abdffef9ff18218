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
 * The per-(head, block) flags of an FP8 pool that say a block holds only normal codes: kept true exactly while every
 * code written since the block's slot 0 is normal, copied with the block, and never changing an attention result.
 */
class QuantizedBlockFlagsTest {
    private static final int HEADS = 2;
    private static final int BLOCKS = 6;
    private static final int BLOCK = 4;
    private static final int DIM = 16;

    private static QuantizedPool pool(KvFormat format) {
        return new QuantizedPool(format, BLOCKS, BLOCK, HEADS, DIM, DIM, new float[] {1f}, new float[] {1f});
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

    @Test
    void aFlagHoldsWhileEveryCodeWrittenSinceSlotZeroIsNormal() {
        SplittableRandom rnd = new SplittableRandom(3);
        for (KvFormat format : new KvFormat[] {KvFormat.FP8_E4M3, KvFormat.FP8_E5M2}) {
            QuantizedPool pool = pool(format);
            assertFalse(pool.keyNormal[0], "a fresh pool's zero codes are not normal");
            pool.write(true, 1, 2, 0, rows(rnd, 2, Float.NaN), 0, 2);
            assertTrue(pool.keyNormal[BLOCKS + 2]);
            assertFalse(pool.valueNormal[BLOCKS + 2], "values are flagged apart");
            pool.write(true, 1, 2, 2, rows(rnd, 1, 1e-9f), 0, 1); // a zero or subnormal code
            assertFalse(pool.keyNormal[BLOCKS + 2]);
            pool.write(true, 1, 2, 3, rows(rnd, 1, Float.NaN), 0, 1);
            assertFalse(pool.keyNormal[BLOCKS + 2], "a later normal row does not clear an earlier one");
            pool.write(true, 1, 2, 0, rows(rnd, 4, Float.NaN), 0, 4);
            assertTrue(pool.keyNormal[BLOCKS + 2], "writing slot 0 again starts the block over");
            pool.copyBlock(2, 5);
            assertTrue(pool.keyNormal[BLOCKS + 5]);
            assertFalse(pool.keyNormal[5], "head 0's block 2 was never written");
            assertNull(pool(KvFormat.INT8).keyNormal, "INT8 has no flags");
        }
    }

    @Test
    void randomWritesNeverLeaveAFlagOverAnAbnormalCode() {
        SplittableRandom rnd = new SplittableRandom(7);
        for (KvFormat format : new KvFormat[] {KvFormat.FP8_E4M3, KvFormat.FP8_E5M2}) {
            QuantizedPool pool = pool(format);
            int[] written = new int[HEADS * BLOCKS]; // slots written since slot 0, per (head, block)
            for (int step = 0; step < 400; step++) {
                int head = rnd.nextInt(HEADS);
                int block = rnd.nextInt(BLOCKS);
                int at = head * BLOCKS + block;
                int slot = rnd.nextInt(4) == 0 ? 0 : Math.min(written[at], BLOCK - 1);
                int n = 1 + rnd.nextInt(BLOCK - slot);
                float odd = rnd.nextInt(6) == 0 ? (rnd.nextBoolean() ? 0f : 3e-6f) : Float.NaN;
                pool.write(true, head, block, slot, rows(rnd, n, odd), 0, n);
                written[at] = slot == 0 ? n : Math.max(written[at], slot + n);
                if (rnd.nextInt(10) == 0) {
                    int to = rnd.nextInt(BLOCKS);
                    pool.copyBlock(block, to);
                    for (int h = 0; h < HEADS; h++) {
                        written[h * BLOCKS + to] = written[h * BLOCKS + block];
                    }
                }
                for (int i = 0; i < HEADS * BLOCKS; i++) {
                    if (pool.keyNormal[i]) {
                        for (int c = i * BLOCK * DIM; c < (i * BLOCK + written[i]) * DIM; c++) {
                            assertTrue(
                                    pool.code.isNormal(pool.keyCodes[c]),
                                    format + ": block " + i + " is flagged but code " + c + " is 0x"
                                            + Integer.toHexString(pool.keyCodes[c] & 0xFF));
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
            QuantizedPool pool = pool(format);
            for (int h = 0; h < HEADS; h++) {
                for (int b = 0; b < BLOCKS; b++) {
                    float odd = b % 3 == 0 ? 1e-9f : Float.NaN; // every third block holds a zero or subnormal code
                    pool.write(true, h, b, 0, rows(rnd, BLOCK, odd), 0, BLOCK);
                    pool.write(false, h, b, 0, rows(rnd, BLOCK, odd), 0, BLOCK);
                }
            }
            int[][] tables = {{0, 1, 2, 3, 4, 5}, {5, 4, 1}};
            int[] lens = {BLOCKS * BLOCK, 3 * BLOCK - 1};
            QuantizedKv flagged = pool.view(tables, lens);
            assertTrue(flagged.keyBlocksNormal()[1] && !flagged.keyBlocksNormal()[0]);
            QuantizedKv unflagged = new QuantizedKv(
                    flagged.format(),
                    BLOCKS,
                    BLOCK,
                    HEADS,
                    DIM,
                    DIM,
                    flagged.keyCodes(),
                    flagged.valueCodes(),
                    flagged.keyScales(),
                    flagged.valueScales(),
                    tables,
                    lens);
            Tensor q = Tensors.random(rnd, DType.F32, 2, HEADS * 4, 1, DIM);
            AttentionOptions options = AttentionOptions.builder().causal(true).build();
            Tensor a = Tensor.allocate(DType.F32, 2, HEADS * 4, 1, DIM);
            Tensor b = Tensor.allocate(DType.F32, 2, HEADS * 4, 1, DIM);
            cpu.forwardQuantized(q, flagged, a, null, options);
            cpu.forwardQuantized(q, unflagged, b, null, options);
            assertArrayEquals(b.toFloatArray(), a.toFloatArray(), format.toString());
        }
    }

    @Test
    void flagsOfTheWrongLengthOrForInt8AreRefused() {
        QuantizedPool pool = pool(KvFormat.FP8_E4M3);
        QuantizedKv good = pool.view(new int[][] {{0}}, new int[] {1});
        QuantizedKv shortFlags = new QuantizedKv(
                good.format(),
                BLOCKS,
                BLOCK,
                HEADS,
                DIM,
                DIM,
                good.keyCodes(),
                good.valueCodes(),
                good.keyScales(),
                good.valueScales(),
                good.blockTables(),
                good.contextLens(),
                new boolean[HEADS * BLOCKS - 1],
                null);
        Tensor q = Tensor.allocate(DType.F32, 1, HEADS, 1, DIM);
        Tensor out = Tensor.allocate(DType.F32, 1, HEADS, 1, DIM);
        AttentionOptions options = AttentionOptions.builder().build();
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class,
                () -> new CpuBackend().forwardQuantized(q, shortFlags, out, null, options));
        assertTrue(e.getMessage().startsWith("keyBlocksNormal: length"), e.getMessage());
        QuantizedPool int8 = pool(KvFormat.INT8);
        QuantizedKv int8View = int8.view(new int[][] {{0}}, new int[] {1});
        QuantizedKv int8Flags = new QuantizedKv(
                int8View.format(),
                BLOCKS,
                BLOCK,
                HEADS,
                DIM,
                DIM,
                int8View.keyCodes(),
                int8View.valueCodes(),
                int8View.keyScales(),
                int8View.valueScales(),
                int8View.blockTables(),
                int8View.contextLens(),
                null,
                new boolean[HEADS * BLOCKS]);
        e = assertThrows(
                IllegalArgumentException.class,
                () -> new CpuBackend().forwardQuantized(q, int8Flags, out, null, options));
        assertTrue(e.getMessage().startsWith("valueBlocksNormal: given only for FP8"), e.getMessage());
        assertEquals(0f, out.toFloatArray()[0], "nothing written");
    }
}
