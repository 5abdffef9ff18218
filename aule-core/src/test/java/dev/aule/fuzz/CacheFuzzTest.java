package dev.aule.fuzz;

import dev.aule.AttentionOptions;
import dev.aule.AttentionResult;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.fuzz.Contract.Breach;
import dev.aule.serving.KvCache;
import dev.aule.serving.KvCacheFullException;
import dev.aule.serving.PagedKvCache;
import dev.aule.serving.Rope;
import dev.aule.testing.Layout;
import dev.aule.testing.UnreachableMemory;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Fuzzes the serving state: {@link Rope#apply} against a float64 rotation, {@link KvCache} (allocate and
 * {@code of} over caller tensors; append with counts and RoPE, truncate, attention) and {@link PagedKvCache}
 * (new sequences, forks sharing blocks, appends with copy-on-write, frees, attention) as random programs
 * checked step by step against a plain model of every sequence's tokens. A rejected step (an
 * {@link IllegalArgumentException} naming the argument, or {@link KvCacheFullException} for a full cache, as
 * documented) must leave every byte of the cache and its lengths, tables and usage unchanged.
 */
class CacheFuzzTest {
    @Test
    void ropeRotatesLikeTheFloat64FormulaOrRejects() {
        Fuzz.check("Rope.apply", 600, CacheFuzzTest::ropeCase);
    }

    @Test
    void ropeBackwardAppliesTheFloat64TransposeOrRejects() {
        Fuzz.check("Rope.applyBackward", 300, c -> ropeCase(c, true));
    }

    @Test
    void kvCacheProgramsMatchTheModel() {
        Fuzz.check("KvCache", 250, CacheFuzzTest::kvCacheCase);
    }

    @Test
    void pagedKvCacheProgramsMatchTheModel() {
        Fuzz.check("PagedKvCache", 250, CacheFuzzTest::pagedCase);
    }

    static Rope rope(Choices c, int headDim, int maxPositions) {
        int rotary = Math.max(2, Math.min(headDim, c.pickInt(headDim, 2, 4, headDim / 2)) / 2 * 2);
        Rope.Scaling scaling = c.pick(new Rope.Scaling.None(), new Rope.Scaling.Linear(2), new Rope.Scaling.Ntk(4));
        Rope.Style style = c.pick(Rope.Style.NEOX, Rope.Style.GPTJ);
        return c.note("rope", Rope.of(rotary, maxPositions, c.pick(10000.0, 500000.0, 1.5), style, scaling));
    }

    /** Row {@code x} rotated to {@code position}, in float64 from the definition. */
    static float[] rotated(Rope rope, float[] x, int position) {
        return rotated(rope, x, position, false);
    }

    /** Row {@code x} rotated to {@code position}, or with {@code transpose} the transpose applied (sin negated). */
    static float[] rotated(Rope rope, float[] x, int position, boolean transpose) {
        int rot = rope.rotaryDim();
        int half = rot / 2;
        double base = rope.scaling().orElseThrow() instanceof Rope.Scaling.Ntk(double f)
                ? rope.theta() * Math.pow(f, rot / (rot - 2.0))
                : rope.theta();
        double scale = rope.scaling().orElseThrow() instanceof Rope.Scaling.Linear(double f) ? 1 / f : 1;
        float[] y = x.clone();
        for (int i = 0; i < half; i++) {
            double angle = (transpose ? -1 : 1) * position * scale * Math.pow(base, -2.0 * i / rot);
            int a = rope.style() == Rope.Style.NEOX ? i : 2 * i;
            int b = rope.style() == Rope.Style.NEOX ? i + half : 2 * i + 1;
            y[a] = (float) (x[a] * Math.cos(angle) - x[b] * Math.sin(angle));
            y[b] = (float) (x[b] * Math.cos(angle) + x[a] * Math.sin(angle));
        }
        return y;
    }

    static void ropeCase(Choices c) {
        ropeCase(c, false);
    }

    /** {@link Rope#apply} or, with {@code backward}, {@link Rope#applyBackward}: the same rules, the transpose. */
    static void ropeCase(Choices c, boolean backward) {
        String name = backward ? "grad" : "x"; // the argument a rejection names
        int batch = c.note("B", c.between(1, 3));
        int heads = c.note("H", c.between(1, 2));
        int seq = c.note("S", c.pickInt(1, 3, 8));
        int d = c.note("D", c.pickInt(8, 16, 2, 6, 64, 1));
        DType dtype = c.note("dtype", Draws.dtype(c));
        Layout layout = c.note("layout", Draws.layout(c));
        int maxPositions = c.note("maxPositions", c.pickInt(16, 1, 100, 4096));
        Rope rope = rope(c, Math.max(2, d), maxPositions);
        int[] starts = new int[batch];
        for (int b = 0; b < batch; b++) {
            starts[b] = c.between(0, Math.max(0, maxPositions - seq));
        }
        int breach = c.oneIn(2) ? c.note("break", c.below(7)) : 0;
        SplittableRandom rnd = new SplittableRandom(c.seed());
        try (Arena arena = Arena.ofConfined()) {
            Tensor x = Draws.tensor(layout, dtype, batch, heads, seq, d, arena, rnd);
            Breach why = Breach.none();
            int victim = rnd.nextInt(batch);
            if (d < rope.rotaryDim()) {
                why = Breach.of("a head dim below the rotary dim", name);
            }
            if (!why.any() && seq > maxPositions) {
                why = Breach.of("more rows than the table has positions", "startPositions");
            }
            switch (why.any() ? 0 : breach) {
                case 1 -> {
                    starts[victim] = maxPositions - seq + 1;
                    why = Breach.of("positions past the table", "startPositions");
                }
                case 2 -> {
                    starts[victim] = rnd.nextBoolean() ? -1 : Integer.MIN_VALUE;
                    why = Breach.of("a negative start", "startPositions");
                }
                case 3 -> {
                    starts[victim] = Integer.MAX_VALUE; // start + S overflows an int
                    why = Breach.of("a start of 2^31-1", "startPositions");
                }
                case 4 -> {
                    Tensor zero = Draws.zeroStride(x);
                    if (zero != null) {
                        x = zero;
                        why = Breach.of("x with a zero stride", name);
                    }
                }
                case 5 -> {
                    x = Tensor.of(x.memory().asReadOnly(), dtype, x.shape(), x.strides());
                    why = Breach.of("read-only x", name);
                }
                case 6 -> {
                    x = UnreachableMemory.closed(x);
                    why = Breach.of("x in a closed arena", name);
                }
                default -> {}
            }
            Tensor fx = x;
            int[] fStarts = starts.clone();
            float[][][][] before = Contract.readable(x) ? rows(x) : null;
            Contract.Call call = backward ? () -> rope.applyBackward(fx, fStarts) : () -> rope.apply(fx, fStarts);
            Contract.check(why, List.of(x), call, () -> {
                Tensor expected = Tensor.allocate(dtype, batch, heads, seq, d);
                for (int b = 0; b < batch; b++) {
                    for (int h = 0; h < heads; h++) {
                        for (int s = 0; s < seq; s++) {
                            expected.writeRow(b, h, s, rotated(rope, before[b][h][s], fStarts[b] + s, backward), 0);
                        }
                    }
                }
                Contract.assertClose("rotated x", fx, expected, dtype == DType.F32 ? 1e-5 : 2e-2);
            });
        }
    }

    private static float[][][][] rows(Tensor t) {
        float[][][][] r = new float[t.batch()][t.heads()][t.seqLen()][t.headDim()];
        for (int b = 0; b < t.batch(); b++) {
            for (int h = 0; h < t.heads(); h++) {
                for (int s = 0; s < t.seqLen(); s++) {
                    t.readRow(b, h, s, r[b][h][s], 0);
                }
            }
        }
        return r;
    }

    /** Runs a step that may be rejected; a rejection must leave {@code state} (a description of all state) as it was. */
    private static void step(
            String what, List<Tensor> storage, Runnable call, java.util.function.Supplier<String> state) {
        String stateBefore = state.get();
        List<byte[]> bytes = Contract.snapshot(storage);
        try {
            call.run();
        } catch (KvCacheFullException e) {
            Contract.assertUnchanged(storage, bytes, what + " (cache full)");
            if (!state.get().equals(stateBefore)) {
                throw new AssertionError(
                        what + ": a full cache changed its state: " + stateBefore + " -> " + state.get());
            }
            throw e;
        }
    }

    static void kvCacheCase(Choices c) {
        int batch = c.note("B", c.between(1, 3));
        int kvHeads = c.note("Hkv", c.between(1, 2));
        int capacity = c.note("capacity", c.pickInt(8, 1, 3, 20));
        int d = c.note("D", c.pickInt(8, 4, 2, 16));
        int dv = c.note("Dv", c.pickInt(d, 1, 5));
        DType dtype = c.note("dtype", Draws.dtype(c));
        boolean own = c.note("of", c.oneIn(2));
        Rope rope = c.oneIn(2) ? rope(c, d, c.pickInt(64, capacity, 2)) : null;
        SplittableRandom rnd = new SplittableRandom(c.seed());
        try (Arena arena = Arena.ofShared()) {
            KvCache cache;
            if (own) {
                Layout layout = c.note("layout", Draws.layout(c));
                Tensor keys = Draws.poisoned(layout, dtype, batch, kvHeads, capacity, d, arena, rnd);
                Tensor values = Draws.poisoned(layout, dtype, batch, kvHeads, capacity, dv, arena, rnd);
                int breach = c.oneIn(3) ? c.note("ofBreak", c.below(4)) : 0;
                Breach why = Breach.none();
                switch (breach) {
                    case 1 -> {
                        Tensor alias = Draws.over(keys.memory(), dtype, values.shape());
                        if (alias != null) {
                            values = alias;
                            why = Breach.of("values over keys", "values", "keys");
                        }
                    }
                    case 2 -> {
                        Tensor zero = Draws.zeroStride(keys);
                        if (zero != null) {
                            keys = zero;
                            why = Breach.of("keys with a zero stride", "keys");
                        }
                    }
                    case 3 -> {
                        values = Tensor.of(values.memory().asReadOnly(), dtype, values.shape(), values.strides());
                        why = Breach.of("read-only values", "values");
                    }
                    default -> {}
                }
                KvCache[] made = new KvCache[1];
                Tensor fk = keys;
                Tensor fv = values;
                Contract.check(why, List.of(), () -> made[0] = KvCache.of(fk, fv), () -> {});
                if (made[0] == null) {
                    return;
                }
                cache = made[0];
            } else {
                cache = KvCache.allocate(dtype, batch, kvHeads, capacity, d, dv);
            }
            List<List<float[][]>> model = new ArrayList<>(); // [b] -> tokens, each {k rows per head..., v rows}
            for (int b = 0; b < batch; b++) {
                model.add(new ArrayList<>());
            }
            int steps = c.note("steps", c.between(1, 5));
            for (int st = 0; st < steps; st++) {
                int op = c.below(3);
                if (op == 2 && c.oneIn(2)) {
                    int b = c.below(batch);
                    int len = c.between(-1, model.get(b).size() + 1);
                    boolean bad = len < 0 || len > model.get(b).size();
                    Contract.check(
                            bad ? Breach.of("truncating to " + len, "length") : Breach.none(),
                            List.of(cache.keys(), cache.values()),
                            () -> cache.truncate(b, len),
                            () -> {});
                    if (!bad) {
                        model.set(b, new ArrayList<>(model.get(b).subList(0, len)));
                    }
                    continue;
                }
                int n = c.between(1, 4);
                Tensor k = Draws.tensor(Layout.BHSD, DType.F32, batch, kvHeads, n, d, null, rnd);
                Tensor v = Draws.tensor(Layout.BHSD, DType.F32, batch, kvHeads, n, dv, null, rnd);
                int[] counts = new int[batch];
                for (int b = 0; b < batch; b++) {
                    counts[b] = c.between(0, n);
                }
                int breach = c.oneIn(3) ? c.below(4) : 0;
                Breach why = Breach.none();
                switch (breach) {
                    case 1 -> {
                        counts[c.below(batch)] = c.pick(-1, n + 1, Integer.MAX_VALUE, Integer.MIN_VALUE);
                        why = Breach.of("a count out of range", "counts");
                    }
                    case 2 -> {
                        counts = Arrays.copyOf(counts, batch + 1);
                        why = Breach.of("a count too many", "counts");
                    }
                    case 3 -> {
                        k = UnreachableMemory.closed(k);
                        why = Breach.of("k in a closed arena", "k");
                    }
                    default -> {}
                }
                boolean full = false;
                boolean pastRope = false;
                if (!why.any()) {
                    for (int b = 0; b < batch; b++) {
                        full |= model.get(b).size() + counts[b] > capacity;
                        pastRope |= rope != null && model.get(b).size() + counts[b] > rope.maxPositions();
                    }
                }
                if (pastRope) {
                    why = Breach.of("positions past the RoPE table", "counts");
                }
                if (why.any() && why.mustReject()) {
                    // a sequence found full before the broken argument is also a refusal that changes nothing
                    why = Breach.mayReject(why.what(), why.names().toArray(String[]::new));
                }
                Tensor fk = k;
                Tensor fv = v;
                int[] fc = counts;
                boolean[] threwFull = {false};
                Contract.check(
                        why,
                        List.of(cache.keys(), cache.values()),
                        () -> {
                            try {
                                step(
                                        "append",
                                        List.of(cache.keys(), cache.values()),
                                        () -> cache.append(fk, fv, fc, rope),
                                        () -> Arrays.toString(cache.lengths()));
                            } catch (KvCacheFullException e) {
                                threwFull[0] = true;
                            }
                        },
                        () -> {});
                if (!why.any() && threwFull[0] != (full && !pastRope)) {
                    throw new AssertionError(
                            threwFull[0] ? "KvCacheFullException with room to spare" : "appended past the capacity");
                }
                if (!why.any() && !full) {
                    for (int b = 0; b < batch; b++) {
                        for (int s = 0; s < fc[b]; s++) {
                            float[][] token = new float[kvHeads * 2][];
                            int position = model.get(b).size();
                            for (int h = 0; h < kvHeads; h++) {
                                float[] row = new float[d];
                                fk.readRow(b, h, s, row, 0);
                                token[h] = rope == null ? row : rotated(rope, row, position);
                                float[] vrow = new float[dv];
                                fv.readRow(b, h, s, vrow, 0);
                                token[kvHeads + h] = vrow;
                            }
                            model.get(b).add(token);
                        }
                    }
                }
                checkModel(cache, model, kvHeads, dtype);
            }
            // Attention over whatever the program left, against the reference over the model's rows.
            int group = c.pickInt(1, 2);
            Tensor q = Draws.tensor(Layout.BHSD, DType.F32, batch, kvHeads * group, c.between(1, 3), d, null, rnd);
            AttentionOptions options =
                    Draws.options(c, rnd, batch, kvHeads * group, q.seqLen(), capacity, false, false);
            AttentionResult r = cache.attention(q, options);
            for (int b = 0; b < batch; b++) {
                int len = cache.length(b);
                Sequences.assertRows(
                        "sequence " + b,
                        r.out(),
                        r.lse(),
                        b,
                        0,
                        q.sequence(b, 0, q.seqLen()),
                        len == 0 ? null : Sequences.gather(cache.keys(), b, Sequences.range(0, len)),
                        len == 0 ? null : Sequences.gather(cache.values(), b, Sequences.range(0, len)),
                        options);
            }
        }
    }

    private static void checkModel(KvCache cache, List<List<float[][]>> model, int kvHeads, DType dtype) {
        double limit = dtype == DType.F32 ? 1e-5 : 2e-2;
        for (int b = 0; b < model.size(); b++) {
            if (cache.length(b) != model.get(b).size()) {
                throw new AssertionError("sequence " + b + ": length " + cache.length(b) + ", model "
                        + model.get(b).size());
            }
            compareTokens("sequence " + b, model.get(b), kvHeads, cache.keys(), cache.values(), b, null, 0, limit);
        }
    }

    /** Compares tokens with rows {@code [0, n)} of batch entry {@code b} (or, with a table, of its blocks). */
    private static void compareTokens(
            String where,
            List<float[][]> tokens,
            int kvHeads,
            Tensor keys,
            Tensor values,
            int b,
            int[] table,
            int blockSize,
            double limit) {
        float[] row = new float[Math.max(keys.headDim(), values.headDim())];
        for (int t = 0; t < tokens.size(); t++) {
            int entry = table == null ? b : table[t / blockSize];
            int slot = table == null ? t : t % blockSize;
            for (int h = 0; h < kvHeads * 2; h++) {
                Tensor pool = h < kvHeads ? keys : values;
                pool.readRow(entry, h % kvHeads, slot, row, 0);
                float[] want = tokens.get(t)[h];
                for (int x = 0; x < want.length; x++) {
                    if (!(Math.abs(row[x] - want[x]) <= limit * Math.max(1, Math.abs(want[x])))) {
                        throw new AssertionError(where + ": token " + t + (h < kvHeads ? " key" : " value") + " head "
                                + h % kvHeads + " element " + x + " is " + row[x] + ", model " + want[x]);
                    }
                }
            }
        }
    }

    static void pagedCase(Choices c) {
        int numBlocks = c.note("numBlocks", c.between(1, 8));
        int blockSize = c.note("blockSize", c.pickInt(2, 1, 4, 3));
        int kvHeads = c.note("Hkv", c.between(1, 2));
        int d = c.note("D", c.pickInt(8, 4, 2));
        int dv = c.note("Dv", c.pickInt(d, 1, 5));
        DType dtype = c.note("dtype", Draws.dtype(c));
        Rope rope = c.oneIn(2) ? rope(c, d, 64) : null;
        SplittableRandom rnd = new SplittableRandom(c.seed());
        PagedKvCache cache = PagedKvCache.create(dtype, numBlocks, blockSize, kvHeads, d, dv);
        Map<Integer, List<float[][]>> model = new HashMap<>();
        List<Tensor> pools = List.of(cache.keyBlocks(), cache.valueBlocks());
        double limit = dtype == DType.F32 ? 1e-5 : 2e-2;
        int steps = c.note("steps", c.between(1, 8));
        List<String> program = new ArrayList<>();
        for (int st = 0; st < steps; st++) {
            List<Integer> live = new ArrayList<>(model.keySet());
            live.sort(null);
            int op = live.isEmpty() ? 0 : c.below(5);
            switch (op) {
                case 0 -> {
                    int id = cache.newSequence();
                    model.put(id, new ArrayList<>());
                    program.add("new " + id);
                }
                case 1 -> {
                    int parent = live.get(c.below(live.size()));
                    int id = cache.fork(parent);
                    model.put(id, new ArrayList<>(model.get(parent)));
                    program.add("fork " + parent + " -> " + id);
                }
                case 2 -> {
                    int id = c.oneIn(4) ? 1000 + c.below(3) : live.get(c.below(live.size()));
                    boolean bad = !model.containsKey(id);
                    program.add("free " + id);
                    Contract.check(
                            bad ? Breach.of("freeing an unknown sequence", "seq") : Breach.none(),
                            pools,
                            () -> cache.free(id),
                            () -> {});
                    model.remove(id);
                }
                default -> {
                    int count = c.between(1, live.size());
                    int[] seqs = new int[count];
                    for (int i = 0; i < count; i++) {
                        seqs[i] = live.get((i + c.below(live.size())) % live.size());
                    }
                    int n = c.between(1, 5);
                    Tensor k = Draws.tensor(Layout.BHSD, DType.F32, count, kvHeads, n, d, null, rnd);
                    Tensor v = Draws.tensor(Layout.BHSD, DType.F32, count, kvHeads, n, dv, null, rnd);
                    Breach why = Breach.none();
                    if (Arrays.stream(seqs).distinct().count() < count) {
                        why = Breach.of("a sequence twice", "seqs");
                    } else if (c.oneIn(6)) {
                        seqs[0] = 1000;
                        why = Breach.of("an unknown sequence", "seqs");
                    } else if (rope != null) {
                        for (int i = 0; i < count; i++) {
                            if (model.get(seqs[i]).size() + n > rope.maxPositions()) {
                                why = Breach.of("positions past the RoPE table", "seqs");
                            }
                        }
                    }
                    program.add("append " + n + " to " + Arrays.toString(seqs));
                    int[] fs = seqs;
                    boolean[] full = {false};
                    Contract.check(
                            why,
                            pools,
                            () -> {
                                try {
                                    step(
                                            "append",
                                            pools,
                                            () -> cache.append(fs, k, v, rope),
                                            () -> state(cache, model.keySet()));
                                } catch (KvCacheFullException e) {
                                    full[0] = true;
                                }
                            },
                            () -> {});
                    if (!why.any() && !full[0]) {
                        for (int i = 0; i < count; i++) {
                            List<float[][]> tokens = model.get(fs[i]);
                            for (int s = 0; s < n; s++) {
                                float[][] token = new float[kvHeads * 2][];
                                for (int h = 0; h < kvHeads; h++) {
                                    float[] row = new float[d];
                                    k.readRow(i, h, s, row, 0);
                                    token[h] = rope == null ? row : rotated(rope, row, tokens.size());
                                    float[] vrow = new float[dv];
                                    v.readRow(i, h, s, vrow, 0);
                                    token[kvHeads + h] = vrow;
                                }
                                tokens.add(token);
                            }
                        }
                    } else if (full[0]) {
                        program.set(program.size() - 1, program.getLast() + " (full)");
                    }
                }
            }
            for (Map.Entry<Integer, List<float[][]>> e : model.entrySet()) {
                int id = e.getKey();
                if (cache.length(id) != e.getValue().size()) {
                    throw new AssertionError("after " + program + ": sequence " + id + " has length " + cache.length(id)
                            + ", model " + e.getValue().size());
                }
                compareTokens(
                        "after " + program + ": sequence " + id,
                        e.getValue(),
                        kvHeads,
                        cache.keyBlocks(),
                        cache.valueBlocks(),
                        0,
                        cache.blockTable(id),
                        blockSize,
                        limit);
            }
            int used = (int) model.keySet().stream()
                    .flatMapToInt(id -> Arrays.stream(cache.blockTable(id)))
                    .distinct()
                    .count();
            if (cache.usage().usedBlocks() != used) {
                throw new AssertionError("after " + program + ": usage says "
                        + cache.usage().usedBlocks() + " blocks used, the live tables hold " + used);
            }
        }
        c.note("program", program);
        if (!model.isEmpty()) {
            int[] seqs =
                    model.keySet().stream().mapToInt(Integer::intValue).sorted().toArray();
            Tensor q = Draws.tensor(Layout.BHSD, DType.F32, seqs.length, kvHeads, c.between(1, 2), d, null, rnd);
            AttentionOptions options =
                    AttentionOptions.builder().causal(c.oneIn(2)).build();
            AttentionResult r = cache.attention(seqs, q, options);
            for (int i = 0; i < seqs.length; i++) {
                int len = model.get(seqs[i]).size();
                Tensor keys = null;
                Tensor vals = null;
                if (len > 0) {
                    // the pools' own rows (checked against the model above), rounded to the cache's dtype
                    keys = Sequences.gatherBlocks(cache.keyBlocks(), cache.blockTable(seqs[i]), len, blockSize);
                    vals = Sequences.gatherBlocks(cache.valueBlocks(), cache.blockTable(seqs[i]), len, blockSize);
                }
                Sequences.assertRows(
                        "sequence " + seqs[i],
                        r.out(),
                        r.lse(),
                        i,
                        0,
                        q.sequence(i, 0, q.seqLen()),
                        keys,
                        vals,
                        options);
            }
        }
    }

    private static String state(PagedKvCache cache, java.util.Set<Integer> ids) {
        StringBuilder s = new StringBuilder(cache.usage().toString());
        ids.stream()
                .sorted()
                .forEach(id -> s.append(' ')
                        .append(id)
                        .append(':')
                        .append(cache.length(id))
                        .append(Arrays.toString(cache.blockTable(id))));
        return s.toString();
    }
}
