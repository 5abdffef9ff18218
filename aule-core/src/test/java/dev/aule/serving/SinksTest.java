package dev.aule.serving;

import dev.aule.Attention;
import dev.aule.AttentionOptions;
import dev.aule.AttentionResult;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Gradients;
import dev.aule.Tensor;
import dev.aule.spi.Accuracy;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.AttentionShape;
import dev.aule.spi.BackwardInputs;
import dev.aule.spi.Capabilities;
import dev.aule.spi.PackedSequences;
import dev.aule.spi.PagedKv;
import dev.aule.testing.ForwardCase;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.EnumSet;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Sink logits against an oracle built without them: the float64 reference forward over the same keys with no
 * sink gives {@code (out0, lse0)}, and the sink term then gives {@code lse = log(exp(lse0) + exp(sink))} and
 * {@code out = out0 exp(lse0 - lse)} (rows without keys: 0 and the sink). Dense, cached, paged and packed entry
 * points on cpu and reference, the gradients by finite differences.
 */
class SinksTest {
    private static final AttentionBackend[] BACKENDS = {Backends.get("cpu"), Backends.get("reference")};

    static float[] randomSinks(SplittableRandom rnd, int heads) {
        float[] sinks = new float[heads];
        for (int h = 0; h < heads; h++) {
            // Mostly near the scores; now and then far above (the sink takes almost everything) or below.
            sinks[h] = switch (rnd.nextInt(6)) {
                case 0 -> 25f;
                case 1 -> -25f;
                default -> (float) (rnd.nextDouble() * 6 - 3);
            };
        }
        return sinks;
    }

    /** The no-sink result with the sink term added, in float64 per row. */
    static AttentionResult withSinks(AttentionResult plain, float[] sinks) {
        Tensor out0 = plain.out();
        Tensor out = Tensor.allocate(DType.F32, out0.batch(), out0.heads(), out0.seqLen(), out0.headDim());
        Tensor lse = Tensor.allocate(DType.F32, out0.batch(), out0.heads(), out0.seqLen(), 1);
        for (int b = 0; b < out0.batch(); b++) {
            for (int h = 0; h < out0.heads(); h++) {
                for (int i = 0; i < out0.seqLen(); i++) {
                    double l0 = plain.lse().get(b, h, i, 0);
                    double s = sinks[h];
                    double l = l0 == Double.NEGATIVE_INFINITY
                            ? s
                            : Math.max(l0, s)
                                    + Math.log(Math.exp(l0 - Math.max(l0, s)) + Math.exp(s - Math.max(l0, s)));
                    double factor = l0 == Double.NEGATIVE_INFINITY ? 0 : Math.exp(l0 - l);
                    for (int x = 0; x < out0.headDim(); x++) {
                        out.set(b, h, i, x, (float) (out0.get(b, h, i, x) * factor));
                    }
                    lse.set(b, h, i, 0, (float) l);
                }
            }
        }
        return new AttentionResult(out, lse);
    }

    /** The oracle of one sequence: rows of {@code q} (batch 1) against {@code k}, {@code v} (null: none). */
    static AttentionResult oracle(Tensor q, Tensor k, Tensor v, int dv, AttentionOptions withSinks) {
        AttentionOptions plain = withSinks.toBuilder().sinks(null).build();
        return withSinks(Oracle.forward(q, k, v, dv, plain), withSinks.sinks());
    }

    /** {@link #oracle} with sinks, the plain reference forward without. */
    static AttentionResult oracleOrPlain(Tensor q, Tensor k, Tensor v, int dv, AttentionOptions options) {
        return options.hasSinks() ? oracle(q, k, v, dv, options) : Oracle.forward(q, k, v, dv, options);
    }

    static void assertClose(
            Tensor out, Tensor lse, AttentionResult expected, Tensor q, Tensor k, AttentionOptions o, String where) {
        double limit = k == null ? 1e-5 : Accuracy.forwardTolerance(out.dtype(), q, k, o);
        double outError = Accuracy.relativeError(out, expected.out());
        assertTrue(outError < limit, "out error " + outError + " over " + limit + ": " + where);
        double lseError = Accuracy.relativeError(lse, expected.lse());
        assertTrue(lseError < Math.max(1e-5, limit), "lse error " + lseError + ": " + where);
    }

    @Test
    void denseForwardAddsTheSinkTermOncePerRow() {
        int splitCalls = 0;
        for (long seed = 1; seed <= 40; seed++) {
            SplittableRandom rnd = new SplittableRandom(seed);
            int kvHeads = 1 + rnd.nextInt(2);
            int group = new int[] {1, 2, 4}[rnd.nextInt(3)];
            int hq = kvHeads * group;
            int d = new int[] {8, 16, 32, 7}[rnd.nextInt(4)];
            int dv = rnd.nextInt(4) == 0 ? 12 : d;
            boolean longDecode = seed % 8 == 0; // one row against thousands of keys: split-KV on cpu
            int batch = longDecode ? 1 : 1 + rnd.nextInt(2);
            int sq = longDecode ? 1 : 1 + rnd.nextInt(24);
            int sk = longDecode ? 2100 + rnd.nextInt(1500) : 1 + rnd.nextInt(40);
            splitCalls += longDecode ? 1 : 0;
            AttentionOptions options = ForwardCase.randomOptions(rnd, hq, sk).toBuilder()
                    .sinks(randomSinks(rnd, hq))
                    .build();
            Tensor q = Tensors.random(rnd, DType.F32, batch, hq, sq, d);
            Tensor k = Tensors.random(rnd, DType.F32, batch, kvHeads, sk, d);
            Tensor v = Tensors.random(rnd, DType.F32, batch, kvHeads, sk, dv);
            for (AttentionBackend backend : BACKENDS) {
                Tensor out = Oracle.poisoned(DType.F32, batch, hq, sq, dv);
                Tensor lse = Oracle.poisoned(DType.F32, batch, hq, sq, 1);
                backend.forward(q, k, v, out, lse, options);
                for (int b = 0; b < batch; b++) {
                    AttentionResult expected =
                            oracle(q.sequence(b, 0, sq), Oracle.prefix(k, b, sk), Oracle.prefix(v, b, sk), dv, options);
                    assertClose(
                            out.sequence(b, 0, sq),
                            lse.sequence(b, 0, sq),
                            expected,
                            q,
                            k,
                            options,
                            backend.name() + " seed " + seed + " " + options);
                }
            }
        }
        assertTrue(splitCalls >= 4, "long decodes: " + splitCalls);
    }

    @Test
    void rowsThatSeeNoKeyAreZeroWithTheSinkAsLse() {
        // Causal with more rows than keys: the first rows see nothing; and a sequence with no keys at all.
        float[] sinks = {0.5f, -2f};
        AttentionOptions options =
                AttentionOptions.builder().causal(true).sinks(sinks).build();
        SplittableRandom rnd = new SplittableRandom(3);
        Tensor q = Tensors.random(rnd, DType.F32, 1, 2, 6, 8);
        Tensor k = Tensors.random(rnd, DType.F32, 1, 1, 3, 8);
        Tensor v = Tensors.random(rnd, DType.F32, 1, 1, 3, 8);
        for (AttentionBackend backend : BACKENDS) {
            AttentionResult r =
                    new AttentionResult(Oracle.poisoned(DType.F32, 1, 2, 6, 8), Oracle.poisoned(DType.F32, 1, 2, 6, 1));
            backend.forward(q, k, v, r.out(), r.lse(), options);
            for (int h = 0; h < 2; h++) {
                for (int i = 0; i < 3; i++) {
                    assertEquals(sinks[h], r.lse().get(0, h, i, 0), backend.name());
                    for (int x = 0; x < 8; x++) {
                        assertEquals(0f, r.out().get(0, h, i, x));
                    }
                }
                assertTrue(r.lse().get(0, h, 5, 0) > sinks[h], "a row with keys has more than the sink");
            }
            Tensor out = Oracle.poisoned(DType.F32, 2, 2, 1, 8);
            Tensor lse = Oracle.poisoned(DType.F32, 2, 2, 1, 1);
            Tensor qd = Tensors.random(rnd, DType.F32, 2, 2, 1, 8);
            Tensor cache = Tensors.random(rnd, DType.F32, 2, 1, 4, 8);
            backend.forwardCached(qd, cache, cache, new int[] {0, 4}, out, lse, options);
            assertEquals(sinks[0], lse.get(0, 0, 0, 0));
            assertEquals(sinks[1], lse.get(0, 1, 0, 0));
            assertEquals(0f, out.get(0, 1, 0, 3));
        }
    }

    @Test
    void cachedPagedAndPackedCallsAddTheSinkPerSequence() {
        for (long seed = 1; seed <= 12; seed++) {
            SplittableRandom rnd = new SplittableRandom(100 + seed);
            Geometry g = Geometry.random(rnd, 4, 12);
            int hq = g.queryHeads();
            int sq = rnd.nextInt(3) == 0 ? 1 + rnd.nextInt(6) : 1;
            int capacity = 1 + rnd.nextInt(60);
            AttentionOptions options = ForwardCase.randomOptions(rnd, hq, capacity).toBuilder()
                    .sinks(randomSinks(rnd, hq))
                    .build();
            int n = g.sequences();
            Tensor q = Tensors.random(rnd, DType.F32, n, hq, sq, g.headDim());
            Tensor kCache = Tensors.random(rnd, DType.F32, n, g.kvHeads(), capacity, g.headDim());
            Tensor vCache = Tensors.random(rnd, DType.F32, n, g.kvHeads(), capacity, g.valueDim());
            int[] lens = new int[n];
            for (int b = 0; b < n; b++) {
                lens[b] = rnd.nextInt(4) == 0 ? 0 : rnd.nextInt(capacity + 1);
            }
            // Paged: each sequence's keys, a block at a time, in a pool of blocks of 4.
            PagedKvCache paged = PagedKvCache.create(DType.F32, n * 16, 4, g.kvHeads(), g.headDim(), g.valueDim());
            int[] seqs = new int[n];
            for (int b = 0; b < n; b++) {
                seqs[b] = paged.newSequence();
                if (lens[b] > 0) {
                    paged.append(seqs[b], kCache.sequence(b, 0, lens[b]), vCache.sequence(b, 0, lens[b]));
                }
            }
            // Packed: the same rows and keys back to back.
            int[] cuQ = new int[n + 1];
            int[] cuK = new int[n + 1];
            for (int b = 0; b < n; b++) {
                cuQ[b + 1] = cuQ[b] + sq;
                cuK[b + 1] = cuK[b] + lens[b];
            }
            Tensor qp = Tensor.allocate(DType.F32, 1, hq, cuQ[n], g.headDim());
            Tensor kp = Tensor.allocate(DType.F32, 1, g.kvHeads(), Math.max(cuK[n], 1), g.headDim());
            Tensor vp = Tensor.allocate(DType.F32, 1, g.kvHeads(), Math.max(cuK[n], 1), g.valueDim());
            for (int b = 0; b < n; b++) {
                copyRows(q.sequence(b, 0, sq), qp.sequence(0, cuQ[b], sq));
                if (lens[b] > 0) {
                    copyRows(kCache.sequence(b, 0, lens[b]), kp.sequence(0, cuK[b], lens[b]));
                    copyRows(vCache.sequence(b, 0, lens[b]), vp.sequence(0, cuK[b], lens[b]));
                }
            }
            for (AttentionBackend backend : BACKENDS) {
                Tensor out = Oracle.poisoned(DType.F32, n, hq, sq, g.valueDim());
                Tensor lse = Oracle.poisoned(DType.F32, n, hq, sq, 1);
                backend.forwardCached(q, kCache, vCache, lens, out, lse, options);
                Tensor pagedOut = Oracle.poisoned(DType.F32, n, hq, sq, g.valueDim());
                Tensor pagedLse = Oracle.poisoned(DType.F32, n, hq, sq, 1);
                int[][] tables = new int[n][];
                int[] pagedLens = new int[n];
                for (int b = 0; b < n; b++) {
                    tables[b] = paged.blockTable(seqs[b]);
                    pagedLens[b] = paged.length(seqs[b]);
                }
                backend.forwardPaged(
                        q,
                        new PagedKv(paged.keyBlocks(), paged.valueBlocks(), tables, pagedLens),
                        pagedOut,
                        pagedLse,
                        options);
                Tensor packedOut = Oracle.poisoned(DType.F32, 1, hq, cuQ[n], g.valueDim());
                Tensor packedLse = Oracle.poisoned(DType.F32, 1, hq, cuQ[n], 1);
                if (cuK[n] > 0) {
                    backend.forwardVarlen(qp, kp, vp, new PackedSequences(cuQ, cuK), packedOut, packedLse, options);
                }
                for (int b = 0; b < n; b++) {
                    Tensor k = Oracle.prefix(kCache, b, lens[b]);
                    Tensor v = Oracle.prefix(vCache, b, lens[b]);
                    Tensor qb = q.sequence(b, 0, sq);
                    AttentionResult expected = oracle(qb, k, v, g.valueDim(), options);
                    String where =
                            backend.name() + " seed " + seed + " sequence " + b + " len " + lens[b] + " " + options;
                    assertClose(
                            out.sequence(b, 0, sq),
                            lse.sequence(b, 0, sq),
                            expected,
                            qb,
                            k,
                            options,
                            "cached " + where);
                    assertClose(
                            pagedOut.sequence(b, 0, sq),
                            pagedLse.sequence(b, 0, sq),
                            expected,
                            qb,
                            k,
                            options,
                            "paged " + where);
                    if (cuK[n] > 0) {
                        assertClose(
                                packedOut.sequence(0, cuQ[b], sq),
                                packedLse.sequence(0, cuQ[b], sq),
                                expected,
                                qb,
                                k,
                                options,
                                "packed " + where);
                    }
                }
            }
        }
    }

    static void copyRows(Tensor from, Tensor to) {
        float[] row = new float[from.headDim()];
        for (int h = 0; h < from.heads(); h++) {
            for (int i = 0; i < from.seqLen(); i++) {
                from.readRow(0, h, i, row, 0);
                to.writeRow(0, h, i, row, 0);
            }
        }
    }

    /** {@code sum(out * w)} in float64, out from the reference forward. */
    private static double loss(Tensor q, Tensor k, Tensor v, Tensor w, AttentionOptions options) {
        Tensor out = Tensor.allocate(DType.F32, q.batch(), q.heads(), q.seqLen(), v.headDim());
        Backends.get("reference").forward(q, k, v, out, null, options);
        float[] o = out.toFloatArray();
        float[] g = w.toFloatArray();
        double sum = 0;
        for (int i = 0; i < o.length; i++) {
            sum += (double) o[i] * g[i];
        }
        return sum;
    }

    @Test
    void gradientsMatchFiniteDifferences() {
        for (long seed = 1; seed <= 6; seed++) {
            SplittableRandom rnd = new SplittableRandom(200 + seed);
            int kvHeads = 1 + rnd.nextInt(2);
            int hq = kvHeads * (1 + rnd.nextInt(2));
            int sq = 1 + rnd.nextInt(7);
            int sk = 1 + rnd.nextInt(9);
            int d = 8;
            AttentionOptions.Builder builder = AttentionOptions.builder().causal(rnd.nextBoolean());
            if (seed % 3 == 0) {
                builder.softcap(5f);
            }
            if (seed % 2 == 0) {
                builder.window(2, -1);
            }
            float[] sinks = new float[hq];
            for (int h = 0; h < hq; h++) {
                sinks[h] = (float) (rnd.nextDouble() * 2 - 1);
            }
            AttentionOptions options = builder.sinks(sinks).build();
            Tensor q = Tensors.random(rnd, DType.F32, 2, hq, sq, d);
            Tensor k = Tensors.random(rnd, DType.F32, 2, kvHeads, sk, d);
            Tensor v = Tensors.random(rnd, DType.F32, 2, kvHeads, sk, d);
            Tensor w = Tensors.random(rnd, DType.F32, 2, hq, sq, d);
            AttentionResult forward = Attention.forwardWithLse(q, k, v, options);
            float[] dSink = Attention.sinkGradients(forward.out(), w, forward.lse(), options);
            double eps = 1e-2;
            for (int h = 0; h < hq; h++) {
                float[] up = sinks.clone();
                float[] down = sinks.clone();
                up[h] += (float) eps;
                down[h] -= (float) eps;
                double fd = (loss(q, k, v, w, options.toBuilder().sinks(up).build())
                                - loss(
                                        q,
                                        k,
                                        v,
                                        w,
                                        options.toBuilder().sinks(down).build()))
                        / (up[h] - down[h]);
                assertEquals(fd, dSink[h], 2e-4 + 2e-3 * Math.abs(fd), "dSink[" + h + "] seed " + seed + " " + options);
            }
            // q, k and v: the usual backward with the LSE that includes the sink, on both backends.
            for (AttentionBackend backend : BACKENDS) {
                Gradients grads = new Gradients(
                        Tensor.allocate(DType.F32, 2, hq, sq, d),
                        Tensor.allocate(DType.F32, 2, kvHeads, sk, d),
                        Tensor.allocate(DType.F32, 2, kvHeads, sk, d));
                backend.backward(new BackwardInputs(q, k, v, forward.out(), w, forward.lse()), grads, options);
                for (int trial = 0; trial < 6; trial++) {
                    Tensor[] inputs = {q, k, v};
                    Tensor[] grad = {grads.dq(), grads.dk(), grads.dv()};
                    int which = trial % 3;
                    Tensor t = inputs[which];
                    int b = rnd.nextInt(2);
                    int h = rnd.nextInt(t.heads());
                    int i = rnd.nextInt(t.seqLen());
                    int x = rnd.nextInt(d);
                    float saved = t.get(b, h, i, x);
                    t.set(b, h, i, x, saved + (float) eps);
                    double plus = loss(q, k, v, w, options);
                    t.set(b, h, i, x, saved - (float) eps);
                    double minus = loss(q, k, v, w, options);
                    t.set(b, h, i, x, saved);
                    double fd = (plus - minus) / (2 * eps);
                    assertEquals(
                            fd,
                            grad[which].get(b, h, i, x),
                            3e-4 + 3e-3 * Math.abs(fd),
                            backend.name() + " d" + "qkv".charAt(which) + " seed " + seed + " " + options);
                }
            }
        }
    }

    @Test
    void dropoutWithSinksAgreesBetweenCpuAndReference() {
        for (long seed = 1; seed <= 6; seed++) {
            SplittableRandom rnd = new SplittableRandom(300 + seed);
            int hq = 4;
            float[] sinks = randomSinks(rnd, hq);
            AttentionOptions options = AttentionOptions.builder()
                    .causal(seed % 2 == 0)
                    .dropout(0.2f, seed)
                    .sinks(sinks)
                    .build();
            Tensor q = Tensors.random(rnd, DType.F32, 1, hq, 9, 16);
            Tensor k = Tensors.random(rnd, DType.F32, 1, 2, 13, 16);
            Tensor v = Tensors.random(rnd, DType.F32, 1, 2, 13, 16);
            Tensor w = Tensors.random(rnd, DType.F32, 1, hq, 9, 16);
            AttentionResult[] results = new AttentionResult[2];
            Gradients[] grads = new Gradients[2];
            for (int i = 0; i < 2; i++) {
                AttentionBackend backend = BACKENDS[i];
                results[i] = new AttentionResult(
                        Tensor.allocate(DType.F32, 1, hq, 9, 16), Tensor.allocate(DType.F32, 1, hq, 9, 1));
                backend.forward(q, k, v, results[i].out(), results[i].lse(), options);
                grads[i] = new Gradients(
                        Tensor.allocate(DType.F32, 1, hq, 9, 16),
                        Tensor.allocate(DType.F32, 1, 2, 13, 16),
                        Tensor.allocate(DType.F32, 1, 2, 13, 16));
                backend.backward(new BackwardInputs(q, k, v, results[i].out(), w, results[i].lse()), grads[i], options);
            }
            String where = "seed " + seed + " " + options;
            assertTrue(Accuracy.relativeError(results[0].out(), results[1].out()) < 1e-5, "out " + where);
            assertTrue(Accuracy.relativeError(results[0].lse(), results[1].lse()) < 1e-5, "lse " + where);
            assertTrue(Accuracy.relativeError(grads[0].dq(), grads[1].dq()) < 1e-4, "dq " + where);
            assertTrue(Accuracy.relativeError(grads[0].dk(), grads[1].dk()) < 1e-4, "dk " + where);
            assertTrue(Accuracy.relativeError(grads[0].dv(), grads[1].dv()) < 1e-4, "dv " + where);
            // The sink's gradient with dropout too: finite differences of the reference forward (same mask).
            float[] dSink = Attention.sinkGradients(results[1].out(), w, results[1].lse(), options);
            double eps = 1e-2;
            float[] up = sinks.clone();
            float[] down = sinks.clone();
            up[1] += (float) eps;
            down[1] -= (float) eps;
            double fd = (loss(q, k, v, w, options.toBuilder().sinks(up).build())
                            - loss(q, k, v, w, options.toBuilder().sinks(down).build()))
                    / (up[1] - down[1]);
            assertEquals(fd, dSink[1], 2e-4 + 2e-3 * Math.abs(fd), "dSink " + where);
        }
    }

    @Test
    void packedBackwardTakesTheSinkThroughTheLse() {
        SplittableRandom rnd = new SplittableRandom(31);
        float[] sinks = {0.3f, -0.7f};
        AttentionOptions options =
                AttentionOptions.builder().causal(true).sinks(sinks).build();
        int[] cu = {0, 3, 3, 8};
        Tensor q = Tensors.random(rnd, DType.F32, 1, 2, 8, 8);
        Tensor k = Tensors.random(rnd, DType.F32, 1, 1, 8, 8);
        Tensor v = Tensors.random(rnd, DType.F32, 1, 1, 8, 8);
        Tensor w = Tensors.random(rnd, DType.F32, 1, 2, 8, 8);
        AttentionResult r = Attention.forwardVarlen(q, k, v, cu, cu, options);
        Gradients packed = Attention.backwardVarlen(q, k, v, r.out(), w, r.lse(), cu, cu, options);
        float[] dSink = Attention.sinkGradients(r.out(), w, r.lse(), options);
        double[] expectedSink = new double[2];
        for (int s = 0; s < 3; s++) {
            int len = cu[s + 1] - cu[s];
            if (len == 0) {
                continue;
            }
            Tensor qs = q.sequence(0, cu[s], len);
            Tensor ks = k.sequence(0, cu[s], len);
            Tensor vs = v.sequence(0, cu[s], len);
            Tensor ws = w.sequence(0, cu[s], len);
            AttentionResult dense = Attention.forwardWithLse(qs, ks, vs, options);
            Gradients g = Attention.backward(qs, ks, vs, dense.out(), ws, dense.lse(), options);
            assertTrue(Accuracy.relativeError(packed.dq().sequence(0, cu[s], len), g.dq()) < 1e-5);
            assertTrue(Accuracy.relativeError(packed.dk().sequence(0, cu[s], len), g.dk()) < 1e-5);
            float[] part = Attention.sinkGradients(dense.out(), ws, dense.lse(), options);
            expectedSink[0] += part[0];
            expectedSink[1] += part[1];
        }
        assertEquals(expectedSink[0], dSink[0], 1e-5);
        assertEquals(expectedSink[1], dSink[1], 1e-5);
    }

    @Test
    void badSinksAreRejected() {
        assertTrue(assertThrows(
                        IllegalArgumentException.class,
                        () -> AttentionOptions.builder().sinks(new float[] {0f, Float.NaN}))
                .getMessage()
                .startsWith("sinks: logit 1"));
        assertThrows(
                IllegalArgumentException.class,
                () -> AttentionOptions.builder().sinks(new float[] {Float.POSITIVE_INFINITY}));
        assertThrows(
                IllegalArgumentException.class, () -> AttentionOptions.builder().sinks(new float[0]));
        // A NaN written into the caller's array after the builder copied it changes nothing.
        float[] caller = {1f, 2f};
        AttentionOptions copied = AttentionOptions.builder().sinks(caller).build();
        caller[0] = Float.NaN;
        assertEquals(1f, copied.sink(0));

        AttentionOptions three =
                AttentionOptions.builder().sinks(new float[] {0f, 1f, 2f}).build();
        SplittableRandom rnd = new SplittableRandom(5);
        Tensor q = Tensors.random(rnd, DType.F32, 1, 2, 4, 8);
        Tensor k = Tensors.random(rnd, DType.F32, 1, 1, 4, 8);
        for (AttentionBackend backend : BACKENDS) {
            Tensor out = Oracle.poisoned(DType.F32, 1, 2, 4, 8);
            String dense = assertThrows(
                            IllegalArgumentException.class, () -> backend.forward(q, k, k, out, null, three))
                    .getMessage();
            String cached = assertThrows(
                            IllegalArgumentException.class,
                            () -> backend.forwardCached(q, k, k, new int[] {4}, out, null, three))
                    .getMessage();
            String paged = assertThrows(
                            IllegalArgumentException.class,
                            () -> backend.forwardPaged(
                                    q, new PagedKv(k, k, new int[][] {{0}}, new int[] {4}), out, null, three))
                    .getMessage();
            String varlen = assertThrows(
                            IllegalArgumentException.class,
                            () -> backend.forwardVarlen(
                                    q, k, k, new PackedSequences(new int[] {0, 4}, new int[] {0, 4}), out, null, three))
                    .getMessage();
            for (String message : new String[] {dense, cached, paged, varlen}) {
                assertTrue(message.startsWith("options.sinks: length 3"), message);
            }
            assertTrue(Oracle.allNaN(out), "nothing written");
        }
        // A backend without the feature refuses sinks instead of ignoring them.
        Capabilities plain = Capabilities.of(512, EnumSet.allOf(DType.class), Capabilities.Feature.SERVING);
        assertFalse(plain.sinks());
        AttentionOptions two =
                AttentionOptions.builder().sinks(new float[] {0f, 1f}).build();
        String refused = assertThrows(
                        IllegalArgumentException.class,
                        () -> AttentionShape.forward(q, k, k, Oracle.poisoned(DType.F32, 1, 2, 4, 8), null, two, plain))
                .getMessage();
        assertTrue(refused.startsWith("options.sinks: sink logits are not supported"), refused);
        // The sink gradient needs sinks, one per head, and matching shapes.
        AttentionResult r = Attention.forwardWithLse(q, k, k, two);
        assertThrows(
                IllegalArgumentException.class,
                () -> Attention.sinkGradients(r.out(), r.out(), r.lse(), AttentionOptions.defaults()));
        assertThrows(IllegalArgumentException.class, () -> Attention.sinkGradients(r.out(), r.out(), r.lse(), three));
        assertThrows(
                IllegalArgumentException.class,
                () -> Attention.sinkGradients(r.out(), Tensor.allocate(DType.F32, 1, 2, 3, 8), r.lse(), two));
    }
}
