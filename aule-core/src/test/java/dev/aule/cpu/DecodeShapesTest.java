package dev.aule.cpu;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.PagedKv;
import dev.aule.testing.Forwards;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Named;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Decode-shaped forwards (1 to 8 queries, GQA groups up to 4, odd cache lengths) on every short-tile
 * path against the float64 reference: keys and values read in place from the caller's array (BHSD,
 * BSHD, a slice at an odd offset), from any other memory (off-heap BHSD and BSHD, a heap segment
 * over a {@code byte[]}) or from the {@code short[]} or off-heap memory of F16 and BF16 tensors
 * (widened in registers), and copied (head dims that are not whole vectors, off-heap rows at an
 * address that is not a whole element). Paged caches read each run of adjacent blocks in place, runs of
 * 1 to 5 blocks that start and end inside the kernel's key blocks, from off-heap and heap pools in the
 * head-major and vLLM layouts, F32 and F16; a block-major pool, whose blocks never follow each other,
 * is copied. Half-precision rows read in place give the bits of the same rows copied.
 */
class DecodeShapesTest {
    private static final int[][] SHAPES = { // {Hq, Hkv, Sq, Sk, D}
        {8, 2, 1, 1, 128}, {8, 2, 1, 63, 128}, {8, 2, 8, 65, 128}, {8, 2, 3, 1001, 128},
        {4, 1, 5, 777, 64}, {8, 2, 7, 2053, 80}, {2, 2, 2, 129, 48}, {8, 2, 8, 3001, 32}
    };
    private static final int[][] PAGED_SHAPES = { // {Hq, Hkv, Sq, D, blockSize, context}
        {8, 2, 1, 128, 16, 1001},
        {8, 2, 1, 128, 24, 777},
        {4, 1, 3, 64, 5, 333},
        {8, 2, 8, 128, 16, 2053},
        {8, 2, 1, 40, 16, 129},
        {16, 2, 4, 32, 7, 500}
    };

    /** The SIMD and the scalar tile math. */
    static Stream<Named<TileMath>> tileMaths() {
        return Stream.of(Named.of("simd", new VectorTileMath()), Named.of("scalar", new ScalarTileMath()));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("tileMaths")
    void shortTilesMatchTheReference(TileMath math) {
        checkAll(new CpuBackend(math));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("tileMaths")
    void pagedBlockRunsMatchTheReference(TileMath math) {
        checkPaged(new CpuBackend(math));
    }

    /**
     * F16 and BF16 keys and values read in place from their {@code short[]} or from off-heap memory give the bits of
     * the same patterns copied from off-heap memory at an odd address (widened into scratch, then the F32 kernels),
     * on every short-tile shape.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("tileMaths")
    void halfPrecisionInPlaceGivesTheBitsOfCopies(TileMath math) {
        CpuBackend cpu = new CpuBackend(math);
        SplittableRandom rnd = new SplittableRandom(43);
        for (DType dtype : new DType[] {DType.F16, DType.BF16}) {
            for (int[] s : SHAPES) {
                for (AttentionOptions option : options()) {
                    Tensor q = Tensors.random(rnd, DType.F32, 1, s[0], s[2], s[4]);
                    Tensor k = Tensors.random(rnd, dtype, 1, s[1], s[3], s[4]);
                    Tensor v = Tensors.random(rnd, dtype, 1, s[1], s[3], s[4]);
                    Tensor[] heap = run(cpu, q, k, v, option);
                    Tensor[] segment = run(cpu, q, offHeapCopy(k, 0), offHeapCopy(v, 0), option);
                    Tensor[] copied = run(cpu, q, offHeapCopy(k, 1), offHeapCopy(v, 1), option);
                    String where = dtype + " " + Arrays.toString(s) + " " + option;
                    assertEquals(0, mismatches(heap[0], copied[0]), "out " + where);
                    assertEquals(0, mismatches(heap[1], copied[1]), "lse " + where);
                    assertEquals(0, mismatches(segment[0], copied[0]), "out off-heap " + where);
                    assertEquals(0, mismatches(segment[1], copied[1]), "lse off-heap " + where);
                }
            }
        }
    }

    private static Tensor[] run(CpuBackend cpu, Tensor q, Tensor k, Tensor v, AttentionOptions option) {
        Tensor out = Tensor.allocate(DType.F32, q.batch(), q.heads(), q.seqLen(), v.headDim());
        Tensor lse = Tensor.allocate(DType.F32, q.batch(), q.heads(), q.seqLen(), 1);
        cpu.forward(q, k, v, out, lse, option);
        return new Tensor[] {out, lse};
    }

    /** Elements whose bits differ between two F32 tensors of one shape. */
    private static int mismatches(Tensor a, Tensor b) {
        int count = 0;
        for (int h = 0; h < a.heads(); h++) {
            for (int i = 0; i < a.seqLen(); i++) {
                for (int x = 0; x < a.headDim(); x++) {
                    if (Float.floatToRawIntBits(a.get(0, h, i, x)) != Float.floatToRawIntBits(b.get(0, h, i, x))) {
                        count++;
                    }
                }
            }
        }
        return count;
    }

    /**
     * The same elements in off-heap memory from byte {@code offset} of a 64-byte aligned block: read in place at an
     * even offset, copied (widened into scratch) at an odd one.
     */
    private static Tensor offHeapCopy(Tensor t, long offset) {
        long bytes = t.memory().byteSize();
        MemorySegment copy = Arena.ofAuto().allocate(bytes + offset, 64).asSlice(offset, bytes);
        MemorySegment.copy(t.memory(), 0, copy, 0, bytes);
        return Tensor.of(copy, t.dtype(), new long[] {t.batch(), t.heads(), t.seqLen(), t.headDim()}, t.strides());
    }

    /** The layouts above that should be read in place are: a silent fallback to copies would pass the others. */
    @Test
    void inPlaceReadsAreTakenWhereTheLayoutAllowsThem() {
        SplittableRandom rnd = new SplittableRandom(41);
        int lanes = new VectorTileMath().lanes();
        for (Layout layout : Layout.values()) {
            boolean expected = layout != Layout.F16_UNALIGNED && layout != Layout.OFF_HEAP_UNALIGNED;
            InPlaceRows rows = KvRows.of(layout.make(rnd, 2, 9, 4 * lanes)).inPlace(lanes);
            assertEquals(expected, rows != null, layout.toString());
            if (rows != null) {
                boolean array = layout == Layout.BHSD || layout == Layout.BSHD || layout == Layout.SLICE;
                assertEquals(array, rows.array() != null, layout + " through its float[]");
                boolean halves = layout == Layout.F16 || layout == Layout.F16_SLICE || layout == Layout.BF16;
                assertEquals(halves, rows.halves() != null, layout + " through its short[]");
                assertEquals(halves || layout == Layout.F16_OFF_HEAP, rows.half(), layout + " as 16-bit patterns");
                assertEquals(layout == Layout.BF16, rows.bf16(), layout + " as bfloat16");
            }
        }
        int[] table = {3, 4, 5, 0, 7, 8};
        for (Pool pool : Pool.values()) {
            KvRows rows = new PagedRows(pool.make(rnd, 9, 2, 16, 4 * lanes), table);
            boolean runs = pool != Pool.BLOCK_MAJOR_OFF_HEAP;
            assertEquals(runs && pool != Pool.HEAD_MAJOR_UNALIGNED, rows.inPlace(lanes) != null, pool.toString());
            if (pool == Pool.HEAD_MAJOR_HEAP_F16) {
                assertTrue(rows.inPlace(lanes).halves() != null, pool + " through its short[]");
            }
            assertEquals(runs ? 48 - 5 : 16 - 5, rows.contiguousRows(5, 90), pool + " run from row 5");
            assertEquals(7 * 16 + 2, rows.storedRow(4 * 16 + 2), pool.toString());
        }
    }

    private static AttentionOptions[] options() {
        return new AttentionOptions[] {
            AttentionOptions.defaults(),
            AttentionOptions.builder().causal(true).build(),
            AttentionOptions.builder().causal(true).window(300, -1).softcap(20f).build(),
        };
    }

    private static void checkAll(CpuBackend cpu) {
        SplittableRandom rnd = new SplittableRandom(29);
        for (int[] s : SHAPES) {
            for (AttentionOptions option : options()) {
                for (Layout layout : Layout.values()) {
                    Tensor q = Tensors.random(rnd, DType.F32, 1, s[0], s[2], s[4]);
                    Tensor k = layout.make(rnd, s[1], s[3], s[4]);
                    Tensor v = layout.make(rnd, s[1], s[3], s[4]);
                    Forwards.Errors errors = Forwards.againstReference(
                            cpu, (b, out, lse) -> b.forward(q, k, v, out, lse, option), 1, s[0], s[2], s[4]);
                    String where = Arrays.toString(s) + " " + layout + " " + option;
                    double tolerance = layout == Layout.BF16 ? 1e-2 : 1e-5;
                    assertTrue(errors.out() < tolerance, "out " + where);
                    assertTrue(errors.lse() < tolerance, "lse " + where);
                }
            }
        }
    }

    private static void checkPaged(CpuBackend cpu) {
        SplittableRandom rnd = new SplittableRandom(37);
        int batch = 2;
        for (int[] s : PAGED_SHAPES) {
            int blockSize = s[4];
            int perSequence = (s[5] + blockSize - 1) / blockSize;
            int numBlocks = batch * perSequence + 3;
            int[][] tables = new int[batch][];
            for (int b = 0; b < batch; b++) {
                tables[b] = blockRuns(rnd, b * perSequence, perSequence);
            }
            int[] lens = {s[5], s[5] - rnd.nextInt(blockSize)};
            for (AttentionOptions option : options()) {
                for (Pool pool : Pool.values()) {
                    Tensor q = Tensors.random(rnd, DType.F32, batch, s[0], s[2], s[3]);
                    Tensor kCache = pool.make(rnd, numBlocks, s[1], blockSize, s[3]);
                    Tensor vCache = pool.make(rnd, numBlocks, s[1], blockSize, s[3]);
                    Forwards.Errors errors = Forwards.againstReference(
                            cpu,
                            (b, out, lse) ->
                                    b.forwardPaged(q, new PagedKv(kCache, vCache, tables, lens), out, lse, option),
                            batch,
                            s[0],
                            s[2],
                            s[3]);
                    String where = Arrays.toString(s) + " " + pool + " " + option;
                    assertTrue(errors.out() < 1e-5, "out " + where);
                    assertTrue(errors.lse() < 1e-5, "lse " + where);
                }
            }
        }
    }

    /**
     * A table over blocks {@code [first, first + count)}: runs of 1 to 5 adjacent blocks in shuffled order, so
     * run boundaries fall anywhere inside the kernel's key blocks.
     */
    private static int[] blockRuns(SplittableRandom rnd, int first, int count) {
        List<int[]> runs = new ArrayList<>();
        for (int at = first, end = first + count; at < end; ) {
            int length = Math.min(1 + rnd.nextInt(5), end - at);
            int[] run = new int[length];
            for (int i = 0; i < length; i++) {
                run[i] = at + i;
            }
            runs.add(run);
            at += length;
        }
        Collections.shuffle(runs, new java.util.Random(rnd.nextLong()));
        return runs.stream().flatMapToInt(Arrays::stream).toArray();
    }

    /** Random floats in [-1, 1) written to {@code floats} floats of {@code memory} from byte {@code at}. */
    private static MemorySegment filled(SplittableRandom rnd, MemorySegment memory, long at, long floats) {
        for (long i = 0; i < floats; i++) {
            memory.set(java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED, at + i * Float.BYTES, (float)
                    (rnd.nextDouble() * 2 - 1));
        }
        return memory.asSlice(at, floats * Float.BYTES);
    }

    private static MemorySegment offHeap(SplittableRandom rnd, long floats, long byteOffset) {
        return filled(rnd, Arena.ofAuto().allocate(floats * Float.BYTES + byteOffset, 64), byteOffset, floats);
    }

    /** How keys and values are stored. */
    private enum Layout {
        BHSD,
        BSHD,
        SLICE,
        BF16,
        /** F16 on the heap, read in place through its {@code short[]}. */
        F16,
        /** F16 BSHD at an odd element offset into its {@code short[]}, read in place. */
        F16_SLICE,
        /** F16 off-heap, read in place through the segment. */
        F16_OFF_HEAP,
        /** F16 off-heap at an odd address: copied. */
        F16_UNALIGNED,
        OFF_HEAP_BHSD,
        OFF_HEAP_BSHD,
        OFF_HEAP_UNALIGNED,
        BYTE_ARRAY;

        Tensor make(SplittableRandom rnd, int heads, int seq, int dim) {
            int n = heads * seq * dim;
            long[] shape = {1, heads, seq, dim};
            long[] bhsd = {n, (long) seq * dim, dim, 1};
            long[] bshd = {n, dim, (long) heads * dim, 1};
            if (this == BF16 || this == F16) {
                return Tensors.random(rnd, this == BF16 ? DType.BF16 : DType.F16, 1, heads, seq, dim);
            }
            if (this == F16_SLICE || this == F16_OFF_HEAP || this == F16_UNALIGNED) {
                MemorySegment memory = this == F16_SLICE
                        ? MemorySegment.ofArray(new short[n + 13]).asSlice(13L * Short.BYTES)
                        : Arena.ofAuto()
                                .allocate((long) n * Short.BYTES + 1, 64)
                                .asSlice(this == F16_UNALIGNED ? 1 : 0, (long) n * Short.BYTES);
                Tensor t = Tensor.of(memory, DType.F16, shape, this == F16_SLICE ? bshd : bhsd);
                Tensors.fillRandom(rnd, t);
                return t;
            }
            if (this == OFF_HEAP_BHSD || this == OFF_HEAP_BSHD || this == OFF_HEAP_UNALIGNED) {
                MemorySegment memory = offHeap(rnd, n, this == OFF_HEAP_UNALIGNED ? 2 : 0);
                return Tensor.of(memory, DType.F32, shape, this == OFF_HEAP_BSHD ? bshd : bhsd);
            }
            if (this == BYTE_ARRAY) {
                MemorySegment memory = filled(rnd, MemorySegment.ofArray(new byte[n * Float.BYTES]), 0, n);
                return Tensor.of(memory, DType.F32, shape, bhsd);
            }
            float[] data = new float[n + 13];
            for (int i = 0; i < data.length; i++) {
                data[i] = (float) (rnd.nextDouble() * 2 - 1);
            }
            return switch (this) {
                case BHSD -> Tensor.of(Arrays.copyOf(data, n), 1, heads, seq, dim);
                case BSHD -> Tensor.ofBshd(Arrays.copyOf(data, n), 1, seq, heads, dim);
                default -> Tensor.of(MemorySegment.ofArray(data).asSlice(13L * Float.BYTES), DType.F32, shape, bhsd);
            };
        }
    }

    /** How a paged pool {@code [numBlocks, Hkv, blockSize, D]} lies in memory. */
    private enum Pool {
        /** {@code [Hkv][numBlocks][blockSize][D]} off-heap, as PagedKvCache keeps: adjacent blocks are one run. */
        HEAD_MAJOR_OFF_HEAP,
        /** The same on the heap, read through its {@code float[]}. */
        HEAD_MAJOR_HEAP,
        /** The same in F16 on the heap, read through its {@code short[]}. */
        HEAD_MAJOR_HEAP_F16,
        /** The same off-heap at an address that is not a whole float: copied. */
        HEAD_MAJOR_UNALIGNED,
        /** vLLM's {@code [numBlocks][blockSize][Hkv][D]} off-heap: adjacent blocks are one run of strided rows. */
        VLLM_OFF_HEAP,
        /** {@code [numBlocks][Hkv][blockSize][D]} off-heap: a head's blocks never follow each other, so copied. */
        BLOCK_MAJOR_OFF_HEAP;

        Tensor make(SplittableRandom rnd, int numBlocks, int kvHeads, int blockSize, int dim) {
            long n = (long) numBlocks * kvHeads * blockSize * dim;
            long[] shape = {numBlocks, kvHeads, blockSize, dim};
            return switch (this) {
                case HEAD_MAJOR_OFF_HEAP, HEAD_MAJOR_UNALIGNED ->
                    Tensor.of(offHeap(rnd, n, this == HEAD_MAJOR_UNALIGNED ? 2 : 0), DType.F32, shape, new long[] {
                        (long) blockSize * dim, (long) numBlocks * blockSize * dim, dim, 1
                    });
                case HEAD_MAJOR_HEAP_F16 -> {
                    Tensor t = Tensor.of(MemorySegment.ofArray(new short[(int) n]), DType.F16, shape, new long[] {
                        (long) blockSize * dim, (long) numBlocks * blockSize * dim, dim, 1
                    });
                    Tensors.fillRandom(rnd, t);
                    yield t;
                }
                case HEAD_MAJOR_HEAP ->
                    Tensor.of(
                            filled(rnd, MemorySegment.ofArray(new float[(int) n]), 0, n), DType.F32, shape, new long[] {
                                (long) blockSize * dim, (long) numBlocks * blockSize * dim, dim, 1
                            });
                case VLLM_OFF_HEAP ->
                    Tensor.of(offHeap(rnd, n, 0), DType.F32, shape, new long[] {
                        (long) blockSize * kvHeads * dim, dim, (long) kvHeads * dim, 1
                    });
                case BLOCK_MAJOR_OFF_HEAP ->
                    Tensor.of(offHeap(rnd, n, 0), DType.F32, shape, new long[] {
                        (long) kvHeads * blockSize * dim, (long) blockSize * dim, dim, 1
                    });
            };
        }
    }
}
