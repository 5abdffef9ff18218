package dev.aule;

import dev.aule.spi.TensorChecks;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Tensor views: layouts, element access, rows, conversions and the 16-bit storage types. */
class TensorTest {

    /** 0, 1, 2, ... in BHSD order: element (b, h, s, d) of a [2, 3, 4, 5] tensor is b*60 + h*20 + s*5 + d. */
    private static float[] iota(int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = i;
        }
        return a;
    }

    private static float bhsdIndex(int b, int h, int s, int d) {
        return b * 60 + h * 20 + s * 5 + d;
    }

    @Test
    void ofArrayIsAZeroCopyBhsdView() {
        float[] data = iota(120);
        Tensor t = Tensor.of(data, 2, 3, 4, 5);
        assertEquals(2, t.batch());
        assertEquals(3, t.heads());
        assertEquals(4, t.seqLen());
        assertEquals(5, t.headDim());
        assertEquals(DType.F32, t.dtype());
        assertArrayEquals(new long[] {2, 3, 4, 5}, t.shape());
        assertArrayEquals(new long[] {60, 20, 5, 1}, t.strides());
        assertEquals(120, t.elementCount());
        assertTrue(t.isContiguous());
        assertEquals(bhsdIndex(1, 2, 3, 4), t.get(1, 2, 3, 4));
        data[(int) bhsdIndex(1, 0, 2, 3)] = -7f; // the view sees writes to the array
        assertEquals(-7f, t.get(1, 0, 2, 3));
        t.set(0, 1, 1, 1, 99f); // and the array sees writes through the view
        assertEquals(99f, data[(int) bhsdIndex(0, 1, 1, 1)]);
    }

    @Test
    void ofBshdReadsBatchSeqHeadDimMemoryAsBhsd() {
        // Memory [B=2, S=4, H=3, D=5]: element (b, s, h, d) at b*60 + s*15 + h*5 + d.
        float[] data = iota(120);
        Tensor t = Tensor.ofBshd(data, 2, 4, 3, 5);
        assertArrayEquals(new long[] {2, 3, 4, 5}, t.shape(), "logical shape is BHSD");
        assertArrayEquals(new long[] {60, 5, 15, 1}, t.strides());
        assertFalse(t.isContiguous());
        for (int b = 0; b < 2; b++) {
            for (int h = 0; h < 3; h++) {
                for (int s = 0; s < 4; s++) {
                    for (int d = 0; d < 5; d++) {
                        assertEquals(b * 60 + s * 15 + h * 5 + d, t.get(b, h, s, d));
                    }
                }
            }
        }
        // toFloatArray is always BHSD order, whatever the layout.
        float[] bhsd = t.toFloatArray();
        assertEquals(1 * 60 + 3 * 15 + 2 * 5 + 4, bhsd[(int) bhsdIndex(1, 2, 3, 4)]);
    }

    @Test
    void customStridesDescribeAnyLayout() {
        // D stride 2 (every other float) and a gap of 3 floats after each row: row stride 2*5 + 3 = 13.
        float[] data = new float[2 * 3 * 4 * 13];
        MemorySegment memory = MemorySegment.ofArray(data);
        long[] strides = {3 * 4 * 13, 4 * 13, 13, 2};
        Tensor t = Tensor.of(memory, DType.F32, new long[] {2, 3, 4, 5}, strides);
        assertArrayEquals(strides, t.strides());
        assertFalse(t.isContiguous());
        assertSame(memory, t.memory());
        t.set(1, 2, 3, 4, 5f);
        assertEquals(5f, data[156 + 2 * 52 + 3 * 13 + 4 * 2]);
        t.fill(1f);
        int ones = 0;
        for (float x : data) {
            ones += x == 1f ? 1 : 0;
        }
        assertEquals(120, ones, "fill writes the 120 elements and no gap");
        // A contiguous layout given explicitly is recognised as such.
        assertTrue(Tensor.of(MemorySegment.ofArray(new float[120]), DType.F32, new long[] {2, 3, 4, 5}, new long[] {
                    60, 20, 5, 1
                })
                .isContiguous());
    }

    /** A size-1 dimension's stride never matters; a layout with any stride there still addresses the same elements. */
    @Test
    void stridesOfExtentOneDimensionsAreIrrelevant() {
        Tensor t = Tensor.of(
                MemorySegment.ofArray(iota(10)), DType.F32, new long[] {1, 1, 2, 5}, new long[] {1_000_000, 777, 5, 1});
        assertEquals(7f, t.get(0, 0, 1, 2));
        assertArrayEquals(iota(10), t.toFloatArray());
    }

    @Test
    void offHeapTensorsWorkLikeHeapOnes() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment memory = arena.allocate(120 * 4, 64);
            Tensor t = Tensor.of(memory, DType.F32, new long[] {2, 3, 4, 5}, new long[] {60, 20, 5, 1});
            assertTrue(t.memory().isNative());
            assertTrue(t.toString().contains("off-heap"), t.toString());
            float[] values = iota(120);
            for (int b = 0; b < 2; b++) {
                for (int h = 0; h < 3; h++) {
                    for (int s = 0; s < 4; s++) {
                        t.writeRow(b, h, s, values, (int) bhsdIndex(b, h, s, 0));
                    }
                }
            }
            assertArrayEquals(values, t.toFloatArray());
            assertEquals(
                    bhsdIndex(1, 1, 1, 1), memory.getAtIndex(ValueLayout.JAVA_FLOAT, (long) bhsdIndex(1, 1, 1, 1)));
        }
    }

    @Test
    void allocateGivesZeroedContiguousTensorsOfEachDtype() {
        for (DType dtype : DType.values()) {
            Tensor t = Tensor.allocate(dtype, 2, 3, 4, 5);
            assertEquals(dtype, t.dtype());
            assertTrue(t.isContiguous());
            assertEquals(120L * dtype.byteSize(), t.memory().byteSize());
            assertArrayEquals(new float[120], t.toFloatArray());
            assertTrue(t.toString().contains(dtype.toString()) && t.toString().contains("heap"), t.toString());
        }
        assertEquals(4, DType.F32.byteSize());
        assertEquals(2, DType.F16.byteSize());
        assertEquals(2, DType.BF16.byteSize());
    }

    @Test
    void readRowAndWriteRowCopyOneHeadDimRowAtAnOffset() {
        for (DType dtype : DType.values()) {
            Tensor t = Tensor.allocate(dtype, 1, 2, 3, 4);
            float[] src = {9, 9, 1, 2, 3, 4, 9};
            t.writeRow(0, 1, 2, src, 2);
            float[] dst = new float[6];
            t.readRow(0, 1, 2, dst, 1);
            assertArrayEquals(new float[] {0, 1, 2, 3, 4, 0}, dst, dtype.toString());
            assertEquals(3f, t.get(0, 1, 2, 2));
            assertEquals(0f, t.get(0, 1, 1, 2), "other rows untouched");
            assertThrows(IndexOutOfBoundsException.class, () -> t.readRow(0, 0, 0, new float[5], 2));
            assertThrows(IndexOutOfBoundsException.class, () -> t.writeRow(0, 0, 0, new float[3], 0));
        }
    }

    @Test
    void indicesOutsideTheShapeAreRejected() {
        Tensor t = Tensor.allocate(DType.F32, 2, 3, 4, 5);
        assertThrows(IndexOutOfBoundsException.class, () -> t.get(2, 0, 0, 0));
        assertThrows(IndexOutOfBoundsException.class, () -> t.get(0, 3, 0, 0));
        assertThrows(IndexOutOfBoundsException.class, () -> t.get(0, 0, 4, 0));
        assertThrows(IndexOutOfBoundsException.class, () -> t.get(0, 0, 0, 5));
        assertThrows(IndexOutOfBoundsException.class, () -> t.set(0, 0, 0, -1, 1f));
        assertThrows(IndexOutOfBoundsException.class, () -> t.readRow(0, 0, 4, new float[5], 0));
    }

    @Test
    void fillSetsEveryElementRoundedToTheDtype() {
        Tensor f16 = Tensor.allocate(DType.F16, 1, 2, 3, 4);
        f16.fill(0.1f);
        for (float x : f16.toFloatArray()) {
            assertEquals(Float.float16ToFloat(Float.floatToFloat16(0.1f)), x);
        }
        Tensor bf16 = Tensor.allocate(DType.BF16, 1, 2, 3, 4);
        bf16.fill(Float.NaN);
        for (float x : bf16.toFloatArray()) {
            assertTrue(Float.isNaN(x), "NaN stays NaN in BF16");
        }
    }

    /** Values a 16-bit type holds exactly survive a round trip unchanged, including the specials. */
    @Test
    void exactValuesRoundTripThroughF16AndBf16() {
        float[] common = {
            0f, -0f, 1f, -2f, 0.5f, 0.375f, 3f, -1024f, 1f / 1024, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY
        };
        float[] f16Only = {65504f, 0x1p-24f, 1f + 0x1p-10f}; // largest, smallest subnormal, 10 fraction bits
        float[] bf16Only = {0x1p127f, 0x1p-133f, 1f + 0x1p-7f}; // F32's range, 7 fraction bits
        for (DType dtype : new DType[] {DType.F16, DType.BF16}) {
            float[] own = dtype == DType.F16 ? f16Only : bf16Only;
            float[] exact = new float[common.length + own.length];
            System.arraycopy(common, 0, exact, 0, common.length);
            System.arraycopy(own, 0, exact, common.length, own.length);
            Tensor t = Tensor.allocate(dtype, 1, 1, 1, exact.length);
            t.writeRow(0, 0, 0, exact, 0);
            float[] back = t.toFloatArray();
            for (int i = 0; i < exact.length; i++) {
                assertEquals(
                        Float.floatToRawIntBits(exact[i]), Float.floatToRawIntBits(back[i]), dtype + " " + exact[i]);
            }
        }
        Tensor bf16 = Tensor.allocate(DType.BF16, 1, 1, 1, 1);
        bf16.set(0, 0, 0, 0, 3.0e38f); // BF16 keeps F32's exponent range
        assertEquals(3.0e38f, bf16.get(0, 0, 0, 0), 3.0e38f * 0x1p-8f);
        Tensor f16 = Tensor.allocate(DType.F16, 1, 1, 1, 1);
        f16.set(0, 0, 0, 0, 1e5f); // over F16's max 65504
        assertEquals(Float.POSITIVE_INFINITY, f16.get(0, 0, 0, 0));
    }

    /**
     * Rounding to nearest, ties to even. F16 keeps 10 fraction bits (spacing 2^-10 above 1), BF16 7
     * (spacing 2^-7): halfway values go to the neighbour with an even last bit.
     */
    @Test
    void f16AndBf16RoundToNearestEven() {
        assertRoundsTo(DType.F16, 1f + 0x1p-11f, 1f); // tie, 1 is even
        assertRoundsTo(DType.F16, 1f + 3 * 0x1p-11f, 1f + 0x1p-9f); // tie, 1 + 2^-9 is even
        assertRoundsTo(DType.F16, 1f + 0x1p-11f + 0x1p-20f, 1f + 0x1p-10f); // just above the tie: up
        assertRoundsTo(DType.F16, -(1f + 0x1p-11f), -1f); // symmetric for negatives
        assertRoundsTo(DType.BF16, 1f + 0x1p-8f, 1f); // tie, 1 is even
        assertRoundsTo(DType.BF16, 1f + 3 * 0x1p-8f, 1f + 0x1p-6f); // tie, 1 + 2^-6 is even
        assertRoundsTo(DType.BF16, 1f + 0x1p-8f + 0x1p-20f, 1f + 0x1p-7f); // just above the tie: up
        assertRoundsTo(DType.BF16, 1f + 0x1p-8f - 0x1p-20f, 1f); // just below: down
        assertRoundsTo(DType.BF16, -(1f + 3 * 0x1p-8f), -(1f + 0x1p-6f));
        assertRoundsTo(DType.BF16, Float.MAX_VALUE, Float.POSITIVE_INFINITY); // rounds past BF16's largest finite
        assertRoundsTo(DType.BF16, 0x1p-130f, 0x1p-130f); // subnormals keep their top bits
    }

    private static void assertRoundsTo(DType dtype, float value, float expected) {
        Tensor t = Tensor.allocate(dtype, 1, 1, 1, 1);
        t.set(0, 0, 0, 0, value);
        assertEquals(expected, t.get(0, 0, 0, 0), () -> dtype + " of " + Float.toHexString(value));
    }

    /** Storing into a 16-bit tensor through a strided view: the 2-byte elements land where the strides say. */
    @Test
    void halfPrecisionStridedViewsAddressTwoByteElements() {
        short[] raw = new short[2 * 3 * 8];
        MemorySegment memory = MemorySegment.ofArray(raw);
        // [1, 2, 3, 4] BSHD-like: H stride 4, S stride 8, D stride 1.
        Tensor t = Tensor.of(memory, DType.BF16, new long[] {1, 2, 3, 4}, new long[] {24, 4, 8, 1});
        t.set(0, 1, 2, 3, 1f);
        assertEquals((short) 0x3F80, raw[4 + 2 * 8 + 3], "1.0 in BF16 is 0x3F80");
        Tensor h = Tensor.of(memory, DType.F16, new long[] {1, 2, 3, 4}, new long[] {24, 4, 8, 1});
        h.set(0, 0, 1, 0, 1f);
        assertEquals((short) 0x3C00, raw[8], "1.0 in F16 is 0x3C00");
    }

    @Test
    void shapeAndStridesAreDefensiveCopies() {
        Tensor t = Tensor.allocate(DType.F32, 2, 3, 4, 5);
        t.shape()[0] = 99;
        t.strides()[0] = 99;
        assertArrayEquals(new long[] {2, 3, 4, 5}, t.shape());
        assertArrayEquals(new long[] {60, 20, 5, 1}, t.strides());
        long[] strides = {60, 20, 5, 1};
        Tensor viewed = Tensor.of(t.memory(), DType.F32, t.shape(), strides);
        strides[3] = 0;
        assertArrayEquals(new long[] {60, 20, 5, 1}, viewed.strides(), "Tensor.of keeps its own copy");
        assertEquals("[2, 3, 4, 5]", t.shapeString());
    }

    @Test
    void readRowsCopiesConsecutiveRowsAtADestinationStride() {
        Tensor dense = Tensor.of(iota(120), 2, 3, 4, 5);
        Tensor bshd = Tensor.ofBshd(dense.toFloatArray(), 2, 4, 3, 5); // same memory order, other layout
        for (Tensor t : new Tensor[] {dense, bshd, Tensor.allocate(DType.BF16, 2, 3, 4, 5)}) {
            if (t.dtype() == DType.BF16) {
                for (int s = 0; s < 4; s++) {
                    t.writeRow(1, 2, s, iota(20), s * 5); // small integers: exact in BF16
                }
            }
            // Dense destination (the bulk-copy case for contiguous F32) and a padded one.
            float[] packed = new float[1 + 3 * 5];
            t.readRows(1, 2, 1, 3, packed, 1, 5);
            float[] padded = new float[3 * 7];
            t.readRows(1, 2, 1, 3, padded, 0, 7);
            float[] row = new float[5];
            for (int r = 0; r < 3; r++) {
                t.readRow(1, 2, 1 + r, row, 0);
                for (int x = 0; x < 5; x++) {
                    assertEquals(row[x], packed[1 + r * 5 + x], t + " packed row " + r);
                    assertEquals(row[x], padded[r * 7 + x], t + " padded row " + r);
                }
                assertEquals(0f, padded[r * 7 + 5], "the gap between destination rows is left alone");
            }
            t.readRows(0, 0, 4, 0, new float[0], 0, 5); // nothing to copy, at the end: fine
            assertThrows(IndexOutOfBoundsException.class, () -> t.readRows(0, 0, 2, 3, new float[15], 0, 5));
            assertThrows(IndexOutOfBoundsException.class, () -> t.readRows(0, 0, 0, 3, new float[14], 0, 5));
            assertThrows(IllegalArgumentException.class, () -> t.readRows(0, 0, 0, 2, new float[10], 0, 4));
        }
    }

    @Test
    void onlyConfinedArenaMemoryIsThreadConfined() {
        assertFalse(TensorChecks.isThreadConfined(Tensor.allocate(DType.F32, 1, 1, 1, 4)), "heap");
        try (Arena confined = Arena.ofConfined();
                Arena shared = Arena.ofShared()) {
            Tensor c = Tensor.of(confined.allocate(16), DType.F32, new long[] {1, 1, 1, 4}, new long[] {4, 4, 4, 1});
            Tensor s = Tensor.of(shared.allocate(16), DType.F32, new long[] {1, 1, 1, 4}, new long[] {4, 4, 4, 1});
            assertTrue(TensorChecks.isThreadConfined(c));
            assertFalse(TensorChecks.isThreadConfined(s));
            assertTrue(TensorChecks.anyThreadConfined(s, null, c));
            assertFalse(TensorChecks.anyThreadConfined(s, null, Tensor.allocate(DType.F16, 1, 1, 1, 1)));
        }
    }
}
