package dev.aule.serving;

import dev.aule.AttentionOptions;
import dev.aule.AttentionResult;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.Availability;
import dev.aule.spi.CacheIndex;
import dev.aule.spi.Capabilities;
import dev.aule.spi.DeviceKv;
import dev.aule.spi.PagedKv;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.util.EnumSet;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Caches with a device copy, on a stand-in device that keeps its copy in tensors of its own and computes with the
 * reference: only changed rows are written to it, a failed upload is repaired by a whole upload before the next
 * attention reads it, and a backend that keeps caches in host memory gives a plain host cache.
 */
class DeviceMirrorTest {
    private final AttentionBackend reference = Backends.get("reference");

    @Test
    void aFailedUploadIsRepairedBeforeAttentionReadsTheCopy() {
        SplittableRandom rnd = new SplittableRandom(71);
        FakeDevice backend = new FakeDevice(reference);
        KvCache device = KvCache.allocate(backend, KvFormat.F32, 2, 1, 8, 8, 8);
        KvCache host = KvCache.allocate(KvFormat.F32, 2, 1, 8, 8, 8);
        assertEquals("fake", device.deviceBackend());
        AttentionOptions options = AttentionOptions.builder().causal(true).build();
        for (int step = 0; step < 4; step++) {
            backend.failNext = step == 1;
            Tensor k = Tensors.random(rnd, DType.F32, 2, 1, 2, 8);
            Tensor v = Tensors.random(rnd, DType.F32, 2, 1, 2, 8);
            device.append(k, v, new int[] {2, step % 2 + 1}, null); // the failure is not thrown from append
            host.append(k, v, new int[] {2, step % 2 + 1}, null);
            Tensor q = Tensors.random(rnd, DType.F32, 2, 1, 1, 8);
            int callsBefore = backend.kv.calls;
            AttentionResult got = device.attention(q, options);
            assertEquals(callsBefore + 1, backend.kv.calls, "attention ran on the device copy");
            AttentionResult want = attendOnHost(host, q, options);
            assertArrayEquals(values(want.out()), values(got.out()), 1e-6f, "step " + step);
        }
        assertEquals(3 * 2 + 1, backend.kv.rowWrites, "three appends of two entries, and one whole repair");
        device.close();
        assertNull(device.deviceBackend());
        assertTrue(backend.kv.closed);
    }

    @Test
    void aHostBackendGivesAHostCache() {
        KvCache cache = KvCache.allocate(reference, KvFormat.F32, 1, 1, 4, 8, 8);
        assertNull(cache.deviceBackend());
        assertEquals(0, cache.deviceBytes());
        PagedKvCache pool = PagedKvCache.create(reference, KvFormat.F16, 2, 4, 1, 8, 8);
        assertNull(pool.deviceBackend());
        cache.close(); // nothing to free
        pool.close();
    }

    private AttentionResult attendOnHost(KvCache host, Tensor q, AttentionOptions options) {
        Tensor out = Tensor.allocate(DType.F32, q.batch(), q.heads(), q.seqLen(), host.valueDim());
        Tensor lse = Tensor.allocate(DType.F32, q.batch(), q.heads(), q.seqLen(), 1);
        host.attentionInto(q, out, lse, options); // auto-selected: cpu, checked against the reference by its own tests
        return new AttentionResult(out, lse);
    }

    private static float[] values(Tensor t) {
        float[] all = new float[(int) t.elementCount()];
        float[] row = new float[t.headDim()];
        int at = 0;
        for (int b = 0; b < t.batch(); b++) {
            for (int h = 0; h < t.heads(); h++) {
                for (int s = 0; s < t.seqLen(); s++) {
                    t.readRow(b, h, s, row, 0);
                    System.arraycopy(row, 0, all, at, row.length);
                    at += row.length;
                }
            }
        }
        return all;
    }

    /** A backend whose "device" is a pair of host tensors of its own, read by the reference backend. */
    private static final class FakeDevice implements AttentionBackend {
        final AttentionBackend compute;
        boolean failNext;
        FakeKv kv;

        FakeDevice(AttentionBackend compute) {
            this.compute = compute;
        }

        @Override
        public String name() {
            return "fake";
        }

        @Override
        public String description() {
            return "a stand-in device";
        }

        @Override
        public int priority() {
            return 0;
        }

        @Override
        public Availability availability() {
            return Availability.available("test");
        }

        @Override
        public Capabilities capabilities() {
            return Capabilities.of(64, EnumSet.allOf(DType.class), Capabilities.Feature.SERVING);
        }

        @Override
        public void forward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, AttentionOptions options) {
            compute.forward(q, k, v, out, lse, options);
        }

        @Override
        public DeviceKv allocateKv(DType dtype, long[] keyShape, long[] valueShape) {
            kv = new FakeKv(this, dtype, keyShape, valueShape);
            return kv;
        }
    }

    private static final class FakeKv implements DeviceKv {
        final FakeDevice owner;
        final Tensor keys;
        final Tensor values;
        int calls;
        int rowWrites;
        boolean closed;

        FakeKv(FakeDevice owner, DType dtype, long[] k, long[] v) {
            this.owner = owner;
            this.keys = Tensor.allocate(dtype, (int) k[0], (int) k[1], (int) k[2], (int) k[3]);
            this.values = Tensor.allocate(dtype, (int) v[0], (int) v[1], (int) v[2], (int) v[3]);
        }

        @Override
        public String backend() {
            return owner.name();
        }

        @Override
        public Capabilities capabilities() {
            return owner.capabilities();
        }

        @Override
        public long bytes() {
            return (keys.elementCount() + values.elementCount()) * keys.dtype().byteSize();
        }

        @Override
        public void writeRows(int[] entries, int[] rows, Tensor[] keyRows, Tensor[] valueRows) {
            if (owner.failNext) {
                owner.failNext = false;
                throw new IllegalStateException("the stand-in device failed an upload");
            }
            for (int i = 0; i < entries.length; i++) {
                rowWrites++;
                copy(keyRows[i], keys, entries[i], rows[i]);
                copy(valueRows[i], values, entries[i], rows[i]);
            }
        }

        private static void copy(Tensor from, Tensor to, int entry, int row) {
            float[] r = new float[from.headDim()];
            for (int b = 0; b < from.batch(); b++) {
                for (int h = 0; h < from.heads(); h++) {
                    for (int s = 0; s < from.seqLen(); s++) {
                        from.readRow(b, h, s, r, 0);
                        to.writeRow(entry + b, h, row + s, r, 0);
                    }
                }
            }
        }

        @Override
        public void forwardCached(Tensor q, CacheIndex index, Tensor out, Tensor lse, AttentionOptions options) {
            calls++;
            owner.compute.forwardCached(q, keys, values, index, out, lse, options);
        }

        @Override
        public void forwardPaged(
                Tensor q, int[][] blockTables, int[] contextLens, Tensor out, Tensor lse, AttentionOptions options) {
            calls++;
            owner.compute.forwardPaged(q, new PagedKv(keys, values, blockTables, contextLens), out, lse, options);
        }

        @Override
        public void close() {
            closed = true;
        }
    }
}
