package dev.aule.serving;

import dev.aule.AttentionOptions;
import dev.aule.Tensor;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.DeviceKv;
import dev.aule.spi.ServingPredicates;

import java.util.Objects;

/**
 * The device copy of a cache's keys and values ({@link DeviceKv}), kept equal to the host storage row by row: the
 * cache writes its host tensors as before and then hands the rows it changed here, which uploads only those.
 * Attention reads the device copy when its backend runs the call's options, else the host storage.
 */
final class DeviceMirror {
    /*
     * Invariants (maintainers):
     *  - The host tensors are the truth. Every row the cache changes on the host is noted by write() and uploaded
     *    by flush() before the cache makes it visible to attention (before the append returns), so whenever
     *    kv is open and not stale, every row attention can read is the same on the device as on the host.
     *  - A failed upload is not thrown from flush() (the cache's append has already changed the host, and an
     *    append is all or nothing): it marks the copy stale, and the next ready() uploads both tensors whole, or
     *    throws that failure, before any attention reads the device.
     *  - After close() kv is null and attention runs on the host storage.
     */
    private final Tensor keys;
    private final Tensor values;
    private DeviceKv kv;
    private boolean stale;
    private final java.util.List<int[]> pending = new java.util.ArrayList<>(); // {entry, row, n} to upload

    private DeviceMirror(Tensor keys, Tensor values, DeviceKv kv) {
        this.keys = keys;
        this.values = values;
        this.kv = kv;
    }

    /**
     * A mirror of {@code keys} and {@code values} on {@code backend}, or null when the backend keeps caches in host
     * memory.
     */
    static DeviceMirror allocate(AttentionBackend backend, Tensor keys, Tensor values) {
        Objects.requireNonNull(backend, "backend");
        DeviceKv kv = backend.allocateKv(keys.dtype(), keys.shape(), values.shape());
        return kv == null ? null : new DeviceMirror(keys, values, kv);
    }

    /** Refuses a quantized format for a device cache, with the reason. */
    static void checkFormat(KvFormat format, AttentionBackend backend) {
        Objects.requireNonNull(format, "format");
        Objects.requireNonNull(backend, "backend");
        if (format.quantized()) {
            throw new IllegalArgumentException("format: a cache on backend " + backend.name() + " holds F32, F16 or"
                    + " BF16, not " + format + ": quantized caches are kept in host memory only; allocate the "
                    + format + " cache without a backend (its attention runs on a backend with QUANTIZED_KV)");
        }
    }

    /** Notes rows {@code [row, row + n)} of entry {@code entry} of keys and values for {@link #flush} (n = 0: none). */
    void write(int entry, int row, int n) {
        if (kv == null || stale || n == 0) {
            return;
        }
        pending.add(new int[] {entry, row, n});
    }

    /** Uploads the rows noted since the last flush, in one transfer. */
    void flush() {
        if (pending.isEmpty()) {
            return;
        }
        int count = pending.size();
        int[] entries = new int[count];
        int[] rows = new int[count];
        Tensor[] k = new Tensor[count];
        Tensor[] v = new Tensor[count];
        for (int i = 0; i < count; i++) {
            int[] w = pending.get(i);
            entries[i] = w[0];
            rows[i] = w[1];
            k[i] = keys.sequence(w[0], w[1], w[2]);
            v[i] = values.sequence(w[0], w[1], w[2]);
        }
        pending.clear();
        try {
            kv.writeRows(entries, rows, k, v);
        } catch (RuntimeException e) {
            stale = true; // see the invariants: ready() uploads all, or throws, before the device is read
        }
    }

    /**
     * Whether attention of q with {@code options} runs on the device: the mirror is open and its backend covers
     * the head dims, q's dtype and the options ({@link ServingPredicates#runs}).
     */
    boolean runs(Tensor q, int valueDim, AttentionOptions options) {
        return kv != null && ServingPredicates.runs(kv.capabilities(), q, valueDim, options);
    }

    /** The device storage with every row equal to the host's (a stale copy is uploaded whole first). */
    DeviceKv ready() {
        if (stale) {
            kv.writeRows(new int[] {0}, new int[] {0}, new Tensor[] {keys}, new Tensor[] {values});
            stale = false;
        }
        return kv;
    }

    /** {@return the device bytes, 0 once closed} */
    long bytes() {
        return kv == null ? 0 : kv.bytes();
    }

    /** {@return the backend holding the copy, null once closed} */
    String backend() {
        return kv == null ? null : kv.backend();
    }

    void close() {
        if (kv != null) {
            DeviceKv k = kv;
            kv = null;
            k.close();
        }
    }
}
