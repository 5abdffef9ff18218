package dev.aule;

import dev.aule.serving.KvCache;
import dev.aule.serving.PagedKvCache;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.BackwardInputs;
import dev.aule.spi.PackedSequences;
import dev.aule.spi.PagedKv;
import dev.aule.testing.BackendNames;
import dev.aule.testing.Tensors;
import dev.aule.testing.UnreachableMemory;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Consumer;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Memory a call cannot read or write from the calling thread (an arena already closed, an arena confined
 * to another thread) is rejected by validation, whichever argument holds it (inputs, outputs, the bias,
 * the partials of a merge, the rows appended to a cache), with an {@link IllegalArgumentException} naming
 * that argument and with nothing written.
 */
class MemoryAccessTest {
    private static final float SENTINEL = 42f;
    private static final int HQ = 2;
    private static final int HKV = 1;
    private static final int SQ = 3;
    private static final int SK = 5;
    private static final int D = 8;
    private static final int DV = 4;

    /**
     * One entry point: its tensor arguments by name (each replaced in turn by unreachable memory), the
     * tensors it must leave unchanged when it rejects a call, and how to call it with a set of arguments.
     */
    private record Call(
            String what, Map<String, Tensor> arguments, List<Tensor> unchanged, Consumer<Map<String, Tensor>> run) {}

    private static List<Call> calls() {
        List<Call> calls = new ArrayList<>();
        for (String name : BackendNames.available()) {
            AttentionBackend backend = Backends.get(name);
            calls.add(forward(
                    name + " forward",
                    (a, o) -> backend.forward(a.get("q"), a.get("k"), a.get("v"), a.get("out"), a.get("lse"), o)));
            if (backend.capabilities().backward()) {
                calls.add(backward(name, backend));
            }
            if (backend.capabilities().serving()) {
                calls.addAll(serving(name, backend));
            }
        }
        calls.add(forward(
                "Attention.forwardInto",
                (a, o) -> Attention.forwardInto(a.get("q"), a.get("k"), a.get("v"), a.get("out"), a.get("lse"), o)));
        calls.add(merge());
        calls.addAll(caches());
        return calls;
    }

    private interface ForwardCall {
        void run(Map<String, Tensor> arguments, AttentionOptions options);
    }

    private static Call forward(String what, ForwardCall call) {
        SplittableRandom rnd = new SplittableRandom(1);
        Map<String, Tensor> a = callTensors(rnd, "k", "v", 1, SK, SQ);
        a.put("options.bias", Tensors.random(rnd, DType.F32, 1, HQ, SQ, SK));
        return new Call(what, a, List.of(a.get("out"), a.get("lse")), args -> call.run(args, withBias(args)));
    }

    private static Call backward(String name, AttentionBackend backend) {
        SplittableRandom rnd = new SplittableRandom(2);
        Map<String, Tensor> a = new LinkedHashMap<>();
        a.put("q", Tensors.random(rnd, DType.F32, 1, HQ, SQ, D));
        a.put("k", Tensors.random(rnd, DType.F32, 1, HKV, SK, D));
        a.put("v", Tensors.random(rnd, DType.F32, 1, HKV, SK, DV));
        a.put("out", Tensors.random(rnd, DType.F32, 1, HQ, SQ, DV));
        a.put("dOut", Tensors.random(rnd, DType.F32, 1, HQ, SQ, DV));
        a.put("lse", Tensors.random(rnd, DType.F32, 1, HQ, SQ, 1));
        a.put("dq", sentinel(1, HQ, SQ, D));
        a.put("dk", sentinel(1, HKV, SK, D));
        a.put("dv", sentinel(1, HKV, SK, DV));
        a.put("options.bias", Tensors.random(rnd, DType.F32, 1, HQ, SQ, SK));
        return new Call(
                name + " backward",
                a,
                List.of(a.get("dq"), a.get("dk"), a.get("dv")),
                args -> backend.backward(
                        new BackwardInputs(
                                args.get("q"),
                                args.get("k"),
                                args.get("v"),
                                args.get("out"),
                                args.get("dOut"),
                                args.get("lse")),
                        new Gradients(args.get("dq"), args.get("dk"), args.get("dv")),
                        withBias(args)));
    }

    /** q {@code [1, HQ, rows, D]}, keys and values {@code [keyBatch, HKV, keyLen, D/DV]}, sentinel out and lse. */
    private static Map<String, Tensor> callTensors(
            SplittableRandom rnd, String keys, String values, int keyBatch, int keyLen, int rows) {
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        tensors.put("q", Tensors.random(rnd, DType.F32, 1, HQ, rows, D));
        tensors.put(keys, Tensors.random(rnd, DType.F32, keyBatch, HKV, keyLen, D));
        tensors.put(values, Tensors.random(rnd, DType.F32, keyBatch, HKV, keyLen, DV));
        tensors.put("out", sentinel(1, HQ, rows, DV));
        tensors.put("lse", sentinel(1, HQ, rows, 1));
        return tensors;
    }

    private static List<Call> serving(String name, AttentionBackend backend) {
        SplittableRandom rnd = new SplittableRandom(3);
        AttentionOptions causal = AttentionOptions.builder().causal(true).build();
        Map<String, Tensor> cached = callTensors(rnd, "kCache", "vCache", 1, 6, SQ);
        Map<String, Tensor> paged = callTensors(rnd, "kCache", "vCache", 3, 2, SQ);
        Map<String, Tensor> varlen = callTensors(rnd, "k", "v", 1, SK, 4);
        return List.of(
                new Call(
                        name + " forwardCached",
                        cached,
                        List.of(cached.get("out"), cached.get("lse")),
                        a -> backend.forwardCached(
                                a.get("q"),
                                a.get("kCache"),
                                a.get("vCache"),
                                new int[] {5},
                                a.get("out"),
                                a.get("lse"),
                                causal)),
                new Call(
                        name + " forwardPaged",
                        paged,
                        List.of(paged.get("out"), paged.get("lse")),
                        a -> backend.forwardPaged(
                                a.get("q"),
                                new PagedKv(a.get("kCache"), a.get("vCache"), new int[][] {{2, 0, 1}}, new int[] {5}),
                                a.get("out"),
                                a.get("lse"),
                                causal)),
                new Call(
                        name + " forwardVarlen",
                        varlen,
                        List.of(varlen.get("out"), varlen.get("lse")),
                        a -> backend.forwardVarlen(
                                a.get("q"),
                                a.get("k"),
                                a.get("v"),
                                new PackedSequences(new int[] {0, 1, 4}, new int[] {0, 2, 5}),
                                a.get("out"),
                                a.get("lse"),
                                causal)));
    }

    private static Call merge() {
        SplittableRandom rnd = new SplittableRandom(4);
        Map<String, Tensor> a = new LinkedHashMap<>();
        for (int p = 0; p < 2; p++) {
            a.put("partials[" + p + "].out", Tensors.random(rnd, DType.F32, 1, HQ, SQ, DV));
            a.put("partials[" + p + "].lse", Tensors.random(rnd, DType.F32, 1, HQ, SQ, 1));
        }
        a.put("out", sentinel(1, HQ, SQ, DV));
        a.put("lse", sentinel(1, HQ, SQ, 1));
        return new Call(
                "Attention.mergeStatesInto",
                a,
                List.of(a.get("out"), a.get("lse")),
                args -> Attention.mergeStatesInto(
                        List.of(
                                new AttentionResult(args.get("partials[0].out"), args.get("partials[0].lse")),
                                new AttentionResult(args.get("partials[1].out"), args.get("partials[1].lse"))),
                        args.get("out"),
                        args.get("lse")));
    }

    private static List<Call> caches() {
        SplittableRandom rnd = new SplittableRandom(5);
        KvCache cache = KvCache.allocate(DType.F32, 1, HKV, 8, D, DV);
        cache.append(Tensors.random(rnd, DType.F32, 1, HKV, 2, D), Tensors.random(rnd, DType.F32, 1, HKV, 2, DV));
        PagedKvCache paged = PagedKvCache.create(DType.F32, 4, 2, HKV, D, DV);
        int seq = paged.newSequence();
        paged.append(seq, Tensors.random(rnd, DType.F32, 1, HKV, 3, D), Tensors.random(rnd, DType.F32, 1, HKV, 3, DV));
        List<Tensor> storage = List.of(cache.keys(), cache.values(), paged.keyBlocks(), paged.valueBlocks());
        Map<String, Tensor> append = new LinkedHashMap<>();
        append.put("k", Tensors.random(rnd, DType.F32, 1, HKV, 2, D));
        append.put("v", Tensors.random(rnd, DType.F32, 1, HKV, 2, DV));
        Map<String, Tensor> attend = new LinkedHashMap<>();
        attend.put("q", Tensors.random(rnd, DType.F32, 1, HQ, SQ, D));
        attend.put("out", sentinel(1, HQ, SQ, DV));
        attend.put("lse", sentinel(1, HQ, SQ, 1));
        List<Tensor> attendUnchanged = List.of(attend.get("out"), attend.get("lse"));
        AttentionOptions options = AttentionOptions.defaults();
        return List.of(
                new Call("KvCache.append", append, storage, a -> cache.append(a.get("k"), a.get("v"))),
                new Call("PagedKvCache.append", append, storage, a -> paged.append(seq, a.get("k"), a.get("v"))),
                new Call(
                        "KvCache.attentionInto",
                        attend,
                        attendUnchanged,
                        a -> cache.attentionInto(a.get("q"), a.get("out"), a.get("lse"), options)),
                new Call(
                        "PagedKvCache.attentionInto",
                        attend,
                        attendUnchanged,
                        a -> paged.attentionInto(new int[] {seq}, a.get("q"), a.get("out"), a.get("lse"), options)));
    }

    @Test
    void closedMemoryInAnyArgumentIsRejectedBeforeAnyWrite() {
        for (Call call : calls()) {
            for (String name : call.arguments().keySet()) {
                assertRejected(call, name, UnreachableMemory::closed, "not alive");
            }
        }
    }

    @Test
    void memoryConfinedToAnotherThreadInAnyArgumentIsRejectedBeforeAnyWrite() throws InterruptedException {
        try (UnreachableMemory.OtherThread other = new UnreachableMemory.OtherThread(1 << 20)) {
            for (Call call : calls()) {
                for (String name : call.arguments().keySet()) {
                    assertRejected(call, name, other::tensor, "another thread");
                }
            }
        }
    }

    /** A closed lse beside a valid out: the call used to fail on the lse after writing out. */
    @Test
    void closedLseBesideAValidOutLeavesOutUnchanged() {
        SplittableRandom rnd = new SplittableRandom(6);
        Tensor q = Tensors.random(rnd, DType.F32, 1, HQ, SQ, D);
        Tensor k = Tensors.random(rnd, DType.F32, 1, HKV, SK, D);
        Tensor v = Tensors.random(rnd, DType.F32, 1, HKV, SK, DV);
        Tensor out = sentinel(1, HQ, SQ, DV);
        Tensor lse = UnreachableMemory.closed(sentinel(1, HQ, SQ, 1));
        for (String name : BackendNames.available()) {
            IllegalArgumentException e = assertThrows(
                    IllegalArgumentException.class,
                    () -> Backends.get(name).forward(q, k, v, out, lse, AttentionOptions.defaults()));
            assertTrue(e.getMessage().startsWith("lse: "), name + ": " + e.getMessage());
            for (float x : out.toFloatArray()) {
                assertEquals(SENTINEL, x, name + ": out was written");
            }
        }
    }

    /** A bias confined to the calling thread is read on that thread only, like confined q, k and v. */
    @Test
    void aBiasConfinedToTheCallingThreadIsReadOnIt() {
        SplittableRandom rnd = new SplittableRandom(7);
        int heads = 4;
        int seq = 130;
        int dim = 32;
        Tensor q = Tensors.random(rnd, DType.F32, 1, heads, seq, dim);
        Tensor k = Tensors.random(rnd, DType.F32, 1, heads, seq, dim);
        Tensor v = Tensors.random(rnd, DType.F32, 1, heads, seq, dim);
        Tensor dOut = Tensors.random(rnd, DType.F32, 1, heads, seq, dim);
        Tensor heapBias = Tensors.random(rnd, DType.F32, 1, heads, seq, seq);
        try (Arena arena = Arena.ofConfined()) {
            long[] shape = heapBias.shape();
            Tensor bias =
                    Tensor.of(arena.allocate(heapBias.elementCount() * Float.BYTES), DType.F32, shape, new long[] {
                        (long) heads * seq * seq, (long) seq * seq, seq, 1
                    });
            float[] row = new float[seq];
            for (int h = 0; h < heads; h++) {
                for (int i = 0; i < seq; i++) {
                    heapBias.readRow(0, h, i, row, 0);
                    bias.writeRow(0, h, i, row, 0);
                }
            }
            for (String name : new String[] {"cpu", "reference"}) {
                AttentionBackend backend = Backends.get(name);
                AttentionResult expected = run(
                        backend,
                        q,
                        k,
                        v,
                        AttentionOptions.builder().bias(heapBias).build());
                AttentionResult confined = run(
                        backend, q, k, v, AttentionOptions.builder().bias(bias).build());
                assertArrayEquals(expected.out().toFloatArray(), confined.out().toFloatArray(), name + " forward");
                Gradients a = gradients(
                        backend,
                        q,
                        k,
                        v,
                        dOut,
                        expected,
                        AttentionOptions.builder().bias(heapBias).build());
                Gradients b = gradients(
                        backend,
                        q,
                        k,
                        v,
                        dOut,
                        expected,
                        AttentionOptions.builder().bias(bias).build());
                assertArrayEquals(a.dq().toFloatArray(), b.dq().toFloatArray(), name + " backward dq");
            }
        }
    }

    private static AttentionResult run(
            AttentionBackend backend, Tensor q, Tensor k, Tensor v, AttentionOptions options) {
        AttentionResult r = new AttentionResult(
                Tensor.allocate(DType.F32, 1, q.heads(), q.seqLen(), v.headDim()),
                Tensor.allocate(DType.F32, 1, q.heads(), q.seqLen(), 1));
        backend.forward(q, k, v, r.out(), r.lse(), options);
        return r;
    }

    private static Gradients gradients(
            AttentionBackend backend,
            Tensor q,
            Tensor k,
            Tensor v,
            Tensor dOut,
            AttentionResult fwd,
            AttentionOptions options) {
        Gradients g = new Gradients(
                Tensor.allocate(DType.F32, 1, q.heads(), q.seqLen(), q.headDim()),
                Tensor.allocate(DType.F32, 1, k.heads(), k.seqLen(), k.headDim()),
                Tensor.allocate(DType.F32, 1, v.heads(), v.seqLen(), v.headDim()));
        backend.backward(new BackwardInputs(q, k, v, fwd.out(), dOut, fwd.lse()), g, options);
        return g;
    }

    private static void assertRejected(Call call, String name, Function<Tensor, Tensor> unreachable, String rule) {
        Map<String, Tensor> arguments = new LinkedHashMap<>(call.arguments());
        arguments.put(name, unreachable.apply(arguments.get(name)));
        List<float[]> before =
                call.unchanged().stream().map(Tensor::toFloatArray).toList();
        String where = call.what() + " with unreachable " + name;
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> call.run().accept(arguments), where);
        assertTrue(e.getMessage().startsWith(name + ": "), where + ": " + e.getMessage());
        assertTrue(e.getMessage().contains(rule), where + ": " + e.getMessage());
        for (int i = 0; i < before.size(); i++) {
            assertArrayEquals(before.get(i), call.unchanged().get(i).toFloatArray(), where + ": a tensor was written");
        }
    }

    private static AttentionOptions withBias(Map<String, Tensor> arguments) {
        return AttentionOptions.builder().bias(arguments.get("options.bias")).build();
    }

    private static Tensor sentinel(int b, int h, int s, int d) {
        Tensor t = Tensor.allocate(DType.F32, b, h, s, d);
        t.fill(SENTINEL);
        return t;
    }
}
