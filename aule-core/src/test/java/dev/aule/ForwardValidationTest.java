package dev.aule;

import dev.aule.testing.BackendNames;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * One test per validation rule of the contract. Forward rules run on every available backend; each
 * asserts an {@link IllegalArgumentException} whose message starts with the argument's name and
 * mentions the rule, and that the outputs (filled with a sentinel) were not written. Rules the
 * builders and tensor factories enforce are tested there.
 */
class ForwardValidationTest {
    private static final float SENTINEL = 42f;
    // A valid call: B 1, Hq 4, Hkv 2, Sq 5, Sk 6, D 8, Dv 4. D != Dv and Hq != Hkv, so an output
    // shaped like the wrong tensor is caught.
    private static final int B = 1;
    private static final int HQ = 4;
    private static final int HKV = 2;
    private static final int SQ = 5;
    private static final int SK = 6;
    private static final int D = 8;
    private static final int DV = 4;

    // A source of this class's own: this test also runs on the module path, where JUnit cannot reach into
    // dev.aule.testing reflectively.
    static List<String> backends() {
        return BackendNames.available();
    }

    private final SplittableRandom rnd = new SplittableRandom(3);

    private Tensor q = Tensors.random(rnd, DType.F32, B, HQ, SQ, D);
    private Tensor k = Tensors.random(rnd, DType.F32, B, HKV, SK, D);
    private Tensor v = Tensors.random(rnd, DType.F32, B, HKV, SK, DV);
    private Tensor out = sentinel(Tensor.allocate(DType.F32, B, HQ, SQ, DV));
    private Tensor lse = sentinel(Tensor.allocate(DType.F32, B, HQ, SQ, 1));
    private AttentionOptions options = AttentionOptions.defaults();

    /** A contiguous F32 output (B, HQ, SQ, DV) over {@code memory}. */
    private static Tensor outView(MemorySegment memory) {
        return Tensor.of(memory, DType.F32, new long[] {B, HQ, SQ, DV}, new long[] {HQ * SQ * DV, SQ * DV, DV, 1});
    }

    private static Tensor sentinel(Tensor t) {
        t.fill(SENTINEL);
        return t;
    }

    /**
     * Calls the backend's forward with the current fields, expects an IllegalArgumentException whose
     * message starts with {@code argument} and contains each fragment, and checks out and lse still
     * hold what they held before.
     */
    private void assertRejected(String backend, String argument, String... fragments) {
        float[] outBefore = out.toFloatArray();
        float[] lseBefore = lse == null ? null : lse.toFloatArray();
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class, () -> Backends.get(backend).forward(q, k, v, out, lse, options));
        assertMessage(e, argument, fragments);
        assertArrayEquals(outBefore, out.toFloatArray(), backend + ": out was written although the call was rejected");
        if (lse != null) {
            assertArrayEquals(
                    lseBefore, lse.toFloatArray(), backend + ": lse was written although the call was rejected");
        }
    }

    /** Expects out rejected for overlapping the input {@code name}, and that input's memory unwritten. */
    private void assertOverlapRejected(String backend, String name, Tensor input) {
        float[] before = input.toFloatArray();
        assertRejected(backend, "out", "overlaps " + name);
        assertArrayEquals(before, input.toFloatArray(), name + "'s memory was written");
    }

    private static void assertMessage(IllegalArgumentException e, String argument, String... fragments) {
        String message = e.getMessage();
        assertTrue(
                message.startsWith(argument + ":"), () -> "message should start with '" + argument + ":': " + message);
        for (String fragment : fragments) {
            assertTrue(message.contains(fragment), () -> "message should mention '" + fragment + "': " + message);
        }
    }

    private static IllegalArgumentException rejects(Executable call) {
        return assertThrows(IllegalArgumentException.class, call);
    }

    /** The fields as they are make a valid call on every backend (so each test breaks exactly one rule). */
    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void theBaseCallIsValid(String backend) {
        assertDoesNotThrow(() -> Backends.get(backend).forward(q, k, v, out, lse, options));
    }

    // ---- rank, shapes and memory of a tensor: enforced when the view is made ----

    @Test
    void aShapeOfRankOtherThanFourIsRejected() {
        MemorySegment memory = MemorySegment.ofArray(new float[24]);
        assertMessage(
                rejects(() -> Tensor.of(memory, DType.F32, new long[] {2, 3, 4}, new long[] {12, 4, 1})),
                "shape",
                "rank");
        assertMessage(
                rejects(() -> Tensor.of(memory, DType.F32, new long[] {1, 1, 2, 3, 4}, new long[] {24, 24, 12, 4, 1})),
                "shape",
                "rank");
        assertMessage(
                rejects(() -> Tensor.of(memory, DType.F32, new long[] {1, 2, 3, 4}, new long[] {12, 4, 1})),
                "strides",
                "rank");
    }

    @Test
    void anExtentBelowOneOrANegativeStrideIsRejected() {
        MemorySegment memory = MemorySegment.ofArray(new float[24]);
        assertMessage(
                rejects(() -> Tensor.of(memory, DType.F32, new long[] {1, 0, 3, 4}, new long[] {12, 12, 4, 1})),
                "shape");
        assertMessage(
                rejects(() -> Tensor.of(memory, DType.F32, new long[] {1, 2, 3, 4}, new long[] {24, 12, -4, 1})),
                "strides");
        assertMessage(rejects(() -> Tensor.of(new float[0], 1, 1, 0, 4)), "shape");
        assertMessage(rejects(() -> Tensor.allocate(DType.F16, 1, -1, 3, 4)), "shape");
    }

    @Test
    void memoryThatDoesNotCoverTheShapeAndStridesIsRejected() {
        // 1 x 2 x 3 x 4 contiguous needs 24 floats; 23 are one short.
        MemorySegment small = MemorySegment.ofArray(new float[23]);
        assertMessage(
                rejects(() -> Tensor.of(small, DType.F32, new long[] {1, 2, 3, 4}, new long[] {12, 12, 4, 1})),
                "memory",
                "bytes");
        // Enough floats for a dense layout, not for a padded one (row stride 5: last element at 1*15 + 2*5 + 3).
        MemorySegment exact = MemorySegment.ofArray(new float[24]);
        assertMessage(
                rejects(() -> Tensor.of(exact, DType.F32, new long[] {1, 2, 3, 4}, new long[] {15, 15, 5, 1})),
                "memory");
        // 24 shorts are 48 bytes: enough for F16, not for F32.
        MemorySegment shorts = MemorySegment.ofArray(new short[24]);
        assertDoesNotThrow(() -> Tensor.of(shorts, DType.F16, new long[] {1, 2, 3, 4}, new long[] {12, 12, 4, 1}));
        assertMessage(
                rejects(() -> Tensor.of(shorts, DType.F32, new long[] {1, 2, 3, 4}, new long[] {12, 12, 4, 1})),
                "memory");
    }

    @Test
    void anArrayWhoseLengthDoesNotMatchTheShapeIsRejected() {
        assertMessage(rejects(() -> Tensor.of(new float[23], 1, 2, 3, 4)), "data", "23");
        assertMessage(rejects(() -> Tensor.of(new float[25], 1, 2, 3, 4)), "data", "25");
        assertMessage(rejects(() -> Tensor.ofBshd(new float[23], 1, 3, 2, 4)), "data", "23");
    }

    // ---- inputs against each other ----

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void batchOfKOrVDifferentFromQIsRejected(String backend) {
        k = Tensors.random(rnd, DType.F32, 2, HKV, SK, D);
        assertRejected(backend, "k, v", "batch", "[2, 2, 6, 8]", q.shapeString());
        k = Tensors.random(rnd, DType.F32, B, HKV, SK, D);
        v = Tensors.random(rnd, DType.F32, 2, HKV, SK, DV);
        assertRejected(backend, "k, v", "batch", "[2, 2, 6, 4]");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void headsOfVDifferentFromKIsRejected(String backend) {
        v = Tensors.random(rnd, DType.F32, B, 1, SK, DV);
        assertRejected(backend, "v", "heads", k.shapeString(), v.shapeString());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void queryHeadsNotAMultipleOfKvHeadsIsRejected(String backend) {
        q = Tensors.random(rnd, DType.F32, B, 3, SQ, D);
        out = sentinel(Tensor.allocate(DType.F32, B, 3, SQ, DV));
        lse = sentinel(Tensor.allocate(DType.F32, B, 3, SQ, 1));
        assertRejected(backend, "q, k", "Hq % Hkv", q.shapeString(), k.shapeString());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void keyLengthOfVDifferentFromKIsRejected(String backend) {
        v = Tensors.random(rnd, DType.F32, B, HKV, SK + 1, DV);
        assertRejected(backend, "v", "sequence length", k.shapeString(), v.shapeString());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void headDimOfKDifferentFromQIsRejected(String backend) {
        k = Tensors.random(rnd, DType.F32, B, HKV, SK, D + 1);
        assertRejected(backend, "k", "head dim", q.shapeString(), k.shapeString());
    }

    /** The CPU backend takes head dims up to 512, of q/k and of v; 513 is over. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void headDimOverTheBackendsLimitIsRejected(String backend) {
        int limit = Backends.get(backend).capabilities().maxHeadDim();
        assumeTrue(limit < 1 << 16, backend + " has no practical head-dim limit (" + limit + ")");
        int over = limit + 1;
        q = Tensors.random(rnd, DType.F32, B, HQ, SQ, over);
        k = Tensors.random(rnd, DType.F32, B, HKV, SK, over);
        assertRejected(backend, "q, v", "head dim " + over, "limit of " + limit);
        q = Tensors.random(rnd, DType.F32, B, HQ, SQ, D);
        k = Tensors.random(rnd, DType.F32, B, HKV, SK, D);
        v = Tensors.random(rnd, DType.F32, B, HKV, SK, over);
        out = sentinel(Tensor.allocate(DType.F32, B, HQ, SQ, over));
        assertRejected(backend, "q, v", "head dim " + over, "limit of " + limit);
    }

    @Test
    void theCpuHeadDimLimitIs512() {
        assertEquals(512, Backends.get("cpu").capabilities().maxHeadDim());
    }

    // ---- options: the builder checks each value, the backend checks them against the shapes ----

    @Test
    void aWindowBoundBelowMinusOneIsRejected() {
        assertMessage(rejects(() -> AttentionOptions.builder().window(-2, 0)), "window", "-2");
        assertMessage(rejects(() -> AttentionOptions.builder().window(0, -2)), "window", "-2");
        assertMessage(rejects(() -> AttentionOptions.builder().window(Integer.MIN_VALUE, -1)), "window");
        assertDoesNotThrow(() -> AttentionOptions.builder().window(-1, -1).window(0, 0));
    }

    @Test
    void aScaleThatIsNotFiniteIsRejected() {
        for (float scale : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
            assertMessage(rejects(() -> AttentionOptions.builder().scale(scale)), "scale", "finite");
        }
    }

    @Test
    void aNegativeOrNonFiniteSoftcapIsRejected() {
        for (float cap : new float[] {-1f, -Float.MIN_VALUE, Float.NaN, Float.POSITIVE_INFINITY}) {
            assertMessage(rejects(() -> AttentionOptions.builder().softcap(cap)), "softcap");
        }
        assertDoesNotThrow(() -> AttentionOptions.builder().softcap(0f)); // 0 turns it off
    }

    @Test
    void emptyOrNonFiniteAlibiSlopesAreRejected() {
        assertMessage(rejects(() -> AttentionOptions.builder().alibiSlopes(new float[0])), "alibiSlopes");
        assertMessage(
                rejects(() -> AttentionOptions.builder().alibiSlopes(new float[] {0.5f, Float.NaN})),
                "alibiSlopes",
                "slope 1");
        assertMessage(
                rejects(() -> AttentionOptions.builder().alibiSlopes(new float[] {Float.NEGATIVE_INFINITY})),
                "alibiSlopes");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void alibiSlopesNotOnePerQueryHeadAreRejected(String backend) {
        options = AttentionOptions.builder()
                .alibiSlopes(new float[] {0.5f, 0.25f, 0.125f})
                .build();
        assertRejected(backend, "options.alibiSlopes", "length 3", "query heads 4");
        // One per KV head is a likely mistake with GQA: still wrong.
        options = AttentionOptions.builder()
                .alibiSlopes(new float[] {0.5f, 0.25f})
                .build();
        assertRejected(backend, "options.alibiSlopes", "length 2");
        options = AttentionOptions.builder()
                .alibiSlopes(new float[] {1, 2, 3, 4, 5})
                .build();
        assertRejected(backend, "options.alibiSlopes", "length 5");
    }

    // ---- outputs ----

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void anOutputOfTheWrongShapeIsRejected(String backend) {
        long[][] wrong = {
            {B, HQ, SQ - 1, DV}, // too small
            {B, HQ, SQ + 1, DV}, // too big
            {B, HQ, SQ, D}, // shaped like q: head dim of q instead of v's
            {B, HKV, SQ, DV}, // KV heads instead of query heads
            {B + 1, HQ, SQ, DV},
        };
        for (long[] shape : wrong) {
            out = sentinel(Tensor.allocate(DType.F32, (int) shape[0], (int) shape[1], (int) shape[2], (int) shape[3]));
            assertRejected(backend, "out", "shape " + out.shapeString(), Arrays.toString(new long[] {B, HQ, SQ, DV}));
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void anLseOfTheWrongShapeOrDtypeIsRejected(String backend) {
        lse = sentinel(Tensor.allocate(DType.F32, B, HQ, SQ, 2));
        assertRejected(backend, "lse", "shape");
        lse = sentinel(Tensor.allocate(DType.F32, B, HQ, SQ - 1, 1));
        assertRejected(backend, "lse", "shape");
        lse = sentinel(Tensor.allocate(DType.F32, B, HKV, SQ, 1));
        assertRejected(backend, "lse", "shape");
        for (DType half : new DType[] {DType.F16, DType.BF16}) {
            lse = sentinel(Tensor.allocate(half, B, HQ, SQ, 1));
            assertRejected(backend, "lse", "F32");
        }
    }

    /** The output is a view of the very float[] q lives in. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void anOutputInTheSameArrayAsQIsRejected(String backend) {
        float[] data = q.toFloatArray();
        q = Tensor.of(data, B, HQ, SQ, D);
        out = outView(MemorySegment.ofArray(data));
        assertOverlapRejected(backend, "q", q);
    }

    /** Overlap by a single element, at v's last float, in native memory. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void anOutputOverlappingTheLastElementOfVIsRejected(String backend) {
        try (Arena arena = Arena.ofShared()) {
            long vFloats = (long) B * HKV * SK * DV;
            long outFloats = (long) B * HQ * SQ * DV;
            MemorySegment memory = arena.allocate((vFloats + outFloats - 1) * 4);
            v = Tensor.of(memory, DType.F32, v.shape(), v.strides());
            Tensors.fillRandom(rnd, v);
            out = outView(memory.asSlice((vFloats - 1) * 4));
            out.fill(SENTINEL);
            assertOverlapRejected(backend, "v", v);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void anOutputOverlappingKIsRejected(String backend) {
        // out's 80 floats lie inside k's 96.
        MemorySegment memory = k.memory();
        out = outView(memory.asSlice(4 * 4));
        assertOverlapRejected(backend, "k", k);
    }

    /** The converse: q and out back to back in one array, touching but disjoint, is fine. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void anOutputRightAfterQInTheSameArrayIsAccepted(String backend) {
        int qFloats = B * HQ * SQ * D;
        float[] data = new float[qFloats + B * HQ * SQ * DV];
        System.arraycopy(q.toFloatArray(), 0, data, 0, qFloats);
        Tensor sharedQ = Tensor.of(MemorySegment.ofArray(data), DType.F32, q.shape(), q.strides());
        Tensor after = outView(MemorySegment.ofArray(data).asSlice(qFloats * 4L));
        Backends.get(backend).forward(sharedQ, k, v, after, null, options);
        Backends.get(backend).forward(q, k, v, out, null, options);
        assertArrayEquals(out.toFloatArray(), after.toFloatArray());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void anLseOverlappingTheOutputOrAnInputIsRejected(String backend) {
        // lse (20 floats) over the start of out's memory.
        lse = Tensor.of(out.memory(), DType.F32, new long[] {B, HQ, SQ, 1}, new long[] {HQ * SQ, SQ, 1, 1});
        assertRejected(backend, "lse", "overlaps out");
        lse = Tensor.of(q.memory(), DType.F32, new long[] {B, HQ, SQ, 1}, new long[] {HQ * SQ, SQ, 1, 1});
        float[] qBefore = q.toFloatArray();
        assertRejected(backend, "lse", "overlaps q");
        assertArrayEquals(qBefore, q.toFloatArray(), "q's memory was written");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void aReadOnlyOutputIsRejected(String backend) {
        out = Tensor.of(out.memory().asReadOnly(), DType.F32, out.shape(), out.strides());
        assertRejected(backend, "out", "read-only");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void aReadOnlyLseIsRejected(String backend) {
        lse = Tensor.of(lse.memory().asReadOnly(), DType.F32, lse.shape(), lse.strides());
        assertRejected(backend, "lse", "read-only");
    }

    /** A zero stride makes several output elements one memory cell: results would overwrite each other. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void anOutputWhoseElementsShareMemoryIsRejected(String backend) {
        // Every query row of a head maps to the same DV floats.
        out = sentinel(
                Tensor.of(MemorySegment.ofArray(new float[HQ * DV]), DType.F32, new long[] {B, HQ, SQ, DV}, new long[] {
                    HQ * DV, DV, 0, 1
                }));
        assertRejected(backend, "out", "strides");
        // Subtler: row stride 2 < DV = 4, so consecutive rows overlap by half.
        out = sentinel(Tensor.of(
                MemorySegment.ofArray(new float[HQ * SQ * DV]), DType.F32, new long[] {B, HQ, SQ, DV}, new long[] {
                    SQ * DV * HQ, SQ * DV, 2, 1
                }));
        assertRejected(backend, "out", "strides");
        out = sentinel(Tensor.allocate(DType.F32, B, HQ, SQ, DV));
        lse = sentinel(Tensor.of(
                MemorySegment.ofArray(new float[HQ]), DType.F32, new long[] {B, HQ, SQ, 1}, new long[] {HQ, 1, 0, 1}));
        assertRejected(backend, "lse", "strides");
    }

    /** The same rules apply through the {@link Attention} facade, which allocates the output itself. */
    @Test
    void theFacadeValidatesToo() {
        Tensor badK = Tensors.random(rnd, DType.F32, B, 3, SK, D);
        Tensor badV = Tensors.random(rnd, DType.F32, B, 3, SK, DV);
        assertMessage(rejects(() -> Attention.forward(q, badK, badV, options)), "q, k", "Hq % Hkv");
        assertMessage(
                rejects(() ->
                        Attention.forwardWithLse(q, k, Tensors.random(rnd, DType.F32, B, HKV, SK + 2, DV), options)),
                "v",
                "sequence length");
        Tensor smallOut = sentinel(Tensor.allocate(DType.F32, B, HQ, SQ - 1, DV));
        assertMessage(rejects(() -> Attention.forwardInto(q, k, v, smallOut, null, options)), "out", "shape");
        for (float x : smallOut.toFloatArray()) {
            assertTrue(x == SENTINEL, "forwardInto wrote into a rejected output");
        }
    }
}
