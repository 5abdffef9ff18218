package dev.aule;

import dev.aule.mask.AttentionMask;
import dev.aule.mask.BlockMask;
import dev.aule.serving.KvCache;
import dev.aule.serving.PagedKvCache;
import dev.aule.serving.Rope;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

import java.lang.foreign.MemorySegment;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Sizes, strides and counts whose products pass the range of int or long are rejected with an
 * {@link IllegalArgumentException} naming the argument, never wrapped around into a small number that
 * then passes the checks, and never reported as an {@link ArithmeticException}.
 */
class SizeArithmeticTest {
    private static final int BIG = 1 << 16; // four of them multiply to 2^64, which wraps to 0 in a long
    private static final int MAX = Integer.MAX_VALUE;

    @Test
    void tensorOffsetsPastTheLongRangeAreRejected() {
        MemorySegment memory = MemorySegment.ofArray(new float[16]);
        assertRejected(
                "strides",
                () -> Tensor.of(memory, DType.F32, new long[] {2, 1, 1, 1}, new long[] {Long.MAX_VALUE, 0, 0, 0}));
        assertRejected(
                "strides",
                () -> Tensor.of(memory, DType.F32, new long[] {4, 1, 1, 1}, new long[] {Long.MAX_VALUE / 2, 0, 0, 0}));
        assertRejected(
                "strides",
                () -> Tensor.of(memory, DType.F16, new long[] {MAX, MAX, 1, 1}, new long[] {1L << 32, 1L << 30, 0, 0}));
    }

    @Test
    void elementCountsPastTheLongRangeAreRejected() {
        MemorySegment memory = MemorySegment.ofArray(new float[1]);
        assertRejected(
                "shape", () -> Tensor.of(memory, DType.F32, new long[] {MAX, MAX, MAX, MAX}, new long[] {0, 0, 0, 0}));
        assertRejected("data", () -> Tensor.of(new float[0], BIG, BIG, BIG, BIG));
        assertRejected("data", () -> Tensor.ofBshd(new float[0], BIG, BIG, BIG, BIG));
        assertRejected("shape", () -> Tensor.allocate(DType.F32, BIG, BIG, BIG, BIG));
        assertRejected("data", () -> AttentionMask.of(new boolean[0], BIG, BIG, BIG, BIG));
        assertRejected("shape", () -> AttentionMask.of((b, h, i, j) -> true, BIG, BIG, BIG, BIG));
        assertRejected("shape", () -> BlockMask.of((b, h, i, j) -> true, BIG, BIG, MAX, MAX));
        assertRejected("shape", () -> BlockMask.of((b, h, i, j) -> true, 1, 1, MAX, MAX));
    }

    @Test
    void aZeroStrideTensorOfLegalSizeKeepsItsCount() {
        Tensor t = Tensor.of(
                MemorySegment.ofArray(new float[8]), DType.F32, new long[] {1, 1, MAX, 8}, new long[] {0, 0, 0, 1});
        assertEquals((long) MAX * 8, t.elementCount());
    }

    @Test
    void cacheSizesPastTheLongRangeAreRejected() {
        assertRejected("batch", () -> KvCache.allocate(DType.F32, MAX, MAX, MAX, MAX));
        assertRejected("numBlocks", () -> PagedKvCache.create(DType.F32, MAX, MAX, 1, MAX));
        assertRejected("tokens", () -> PagedKvCache.blocksFor(Long.MAX_VALUE, 2));
        assertEquals(MAX, PagedKvCache.blocksFor(MAX, 1));
        assertEquals(1 << 30, PagedKvCache.blocksFor(MAX, 2));
    }

    /** RoPE rotates in place; rows that share memory would be rotated once per row that shares them. */
    @Test
    void ropeRejectsRowsThatShareMemory() {
        Tensor broadcast = Tensor.of(
                MemorySegment.ofArray(new float[8]), DType.F32, new long[] {1, 1, 3, 8}, new long[] {8, 8, 0, 1});
        assertRejected("x", () -> Rope.of(8, 16, 10000, Rope.Style.NEOX).apply(broadcast, 0));
    }

    private static void assertRejected(String argument, Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call, argument);
        assertTrue(e.getMessage().startsWith(argument), argument + " expected: " + e.getMessage());
    }
}
