package dev.aule.vulkan;

import dev.aule.DType;
import dev.aule.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A tensor resident on the Vulkan device: contiguous BHSD {@code [batch, heads, seq, headDim]} in
 * F32, F16 or BF16. Keeps Q/K/V (or a KV cache) on the GPU across calls so nothing is re-uploaded per
 * call; {@link VulkanBackend#forward(VulkanTensor, VulkanTensor, VulkanTensor, VulkanTensor, VulkanTensor,
 * dev.aule.AttentionOptions)} reads and writes these directly. Create one with {@link VulkanBackend#allocate}
 * or {@link VulkanBackend#upload}; close it to free the device memory (it is also freed when the JVM
 * exits).
 *
 * <p>Lifetime: safe to share between threads, and safe to close from any thread at any time.
 * {@link #close()} waits for the calls that are using the tensor ({@code forward}, {@code backward},
 * {@link #upload}, {@link #download}) to finish, then frees the memory; a call that starts once
 * {@code close()} has begun throws {@link IllegalStateException} naming the tensor, before it writes
 * anything. A tensor passed to a {@link VulkanBackend} running on another device is rejected with
 * {@link IllegalArgumentException}.
 */
public final class VulkanTensor implements AutoCloseable {
    /*
     * Lifetime invariants (maintainers):
     *  - Every use of the buffer holds a lease (users > 0), taken by use() only while the device's use lock is
     *    held for reading (VulkanDevice.whileUsable), and only while the tensor is OPEN.
     *  - close() moves OPEN -> CLOSING at once (no new lease from then on), then, under the read lock
     *    (VulkanDevice.whileOpen), waits for users to reach 0 and frees the buffer, then leaves the device's
     *    live set. So the buffer is freed at most once, never under a lease, and never after the device is
     *    destroyed: whileOpen skips a closed device, which freed every tensor still in its live set first.
     *  - The device's close (JVM shutdown) holds the write lock, so no lease exists while it frees the live
     *    tensors (freeAtShutdown).
     *  - The lease count waits on a private monitor, never on the tensor itself, so callers synchronising on a
     *    VulkanTensor cannot interfere.
     */

    /**
     * Validation reuses {@link dev.aule.spi.AttentionShape}, which works on {@link Tensor}s: each device tensor
     * gets a stand-in {@code Tensor} over a range of addresses no other device tensor has and nothing ever
     * dereferences, so the shared rules (shapes, dtypes, outputs overlapping inputs) apply unchanged.
     */
    private static final AtomicLong NEXT_STAND_IN_ADDRESS = new AtomicLong(1L << 52);

    private enum Life {
        OPEN,
        CLOSING,
        FREED
    }

    private final VulkanDevice device;
    private final DeviceBuffer buffer;
    private final DType dtype;
    private final long[] shape;
    private final Tensor standIn;
    private final Object lifeLock = new Object();
    private Life life = Life.OPEN; // guarded by lifeLock
    private int users; // guarded by lifeLock

    @SuppressWarnings("restricted") // the stand-in segment is never read or written
    VulkanTensor(VulkanDevice device, DeviceBuffer buffer, DType dtype, long[] shape) {
        this.device = device;
        this.buffer = buffer;
        this.dtype = dtype;
        this.shape = shape.clone();
        long bytes = HostCopy.bytes(dtype, shape);
        long address = NEXT_STAND_IN_ADDRESS.getAndAdd((bytes + 8191) & ~4095L);
        this.standIn = HostCopy.view(MemorySegment.ofAddress(address).reinterpret(bytes), dtype, shape);
    }

    /**
     * The storage type on the device.
     *
     * @return F32, F16 or BF16
     */
    public DType dtype() {
        return dtype;
    }

    /**
     * The extents, a copy.
     *
     * @return {@code [batch, heads, seq, headDim]}
     */
    public long[] shape() {
        return shape.clone();
    }

    /**
     * The batch size.
     *
     * @return {@code shape()[0]}
     */
    public int batch() {
        return (int) shape[0];
    }

    /**
     * The number of heads.
     *
     * @return {@code shape()[1]}
     */
    public int heads() {
        return (int) shape[1];
    }

    /**
     * The sequence length.
     *
     * @return {@code shape()[2]}
     */
    public int seqLen() {
        return (int) shape[2];
    }

    /**
     * The head dim.
     *
     * @return {@code shape()[3]}
     */
    public int headDim() {
        return (int) shape[3];
    }

    /**
     * Copies {@code src} (any layout and dtype, rounded to this tensor's dtype) onto the device.
     *
     * @param src a host tensor of this tensor's shape
     * @throws IllegalArgumentException when the shapes differ
     * @throws IllegalStateException when this tensor was closed
     */
    public void upload(Tensor src) {
        checkOpen(null);
        checkShape("src", src);
        Submission.run(device, (scope, s) -> {
            DeviceBuffer b = scope.add(use(null)).buffer();
            s.write(b, memory -> HostCopy.copy(src, HostCopy.view(memory, dtype, shape)));
        });
    }

    /**
     * Copies {@code src} into rows {@code [seqStart, seqStart + n)} of batch entries {@code [batchStart,
     * batchStart + b)}, every head, leaving the other rows as they are: how a device-resident KV cache takes a
     * step's new keys and values without uploading the whole cache (then pass the new lengths to {@link
     * VulkanBackend#forwardCached(VulkanTensor, VulkanTensor, VulkanTensor, int[], VulkanTensor, VulkanTensor,
     * dev.aule.AttentionOptions)}). Entries of different lengths take one call each ({@code b = 1}).
     *
     * @param src        a host tensor {@code [b, heads, n, headDim]} of this tensor's heads and head dim, any layout
     *                   and dtype (rounded to this tensor's dtype)
     * @param batchStart the first batch entry written, {@code 0 <= batchStart <= batch - b}
     * @param seqStart   the first row written, {@code 0 <= seqStart <= seqLen - n}
     * @throws IllegalArgumentException when the heads or head dim differ or the rows do not fit; nothing is written
     * @throws IllegalStateException    when this tensor was closed
     */
    public void uploadRows(Tensor src, int batchStart, int seqStart) {
        checkOpen(null);
        checkRows(src, batchStart, seqStart);
        Submission.run(device, (scope, sub) -> {
            DeviceBuffer b = scope.add(use(null)).buffer();
            sub.writeRows(b, dtype, shape, batchStart, seqStart, src);
        });
    }

    /** The checks of {@link #uploadRows}: src's heads and head dim, and its rows inside this tensor. */
    void checkRows(Tensor src, int batchStart, int seqStart) {
        java.util.Objects.requireNonNull(src, "src");
        long[] s = src.shape();
        if (s[1] != shape[1] || s[3] != shape[3]) {
            throw new IllegalArgumentException("src: shape " + src.shapeString() + " must have the heads and head dim"
                    + " of the device tensor's " + Arrays.toString(shape));
        }
        if (batchStart < 0 || batchStart > shape[0] - s[0]) {
            throw new IllegalArgumentException("batchStart: " + batchStart + " must be in [0, " + (shape[0] - s[0])
                    + "] so that " + s[0] + " batch entries fit the device tensor's " + shape[0]);
        }
        if (seqStart < 0 || seqStart > shape[2] - s[2]) {
            throw new IllegalArgumentException("seqStart: " + seqStart + " must be in [0, " + (shape[2] - s[2])
                    + "] so that " + s[2] + " rows fit the device tensor's " + shape[2]);
        }
    }

    /**
     * Copies this tensor into {@code dst} (any layout and dtype, rounded to its dtype).
     *
     * @param dst a writable host tensor of this tensor's shape
     * @throws IllegalArgumentException when the shapes differ or {@code dst} is read-only
     * @throws IllegalStateException when this tensor was closed
     */
    public void download(Tensor dst) {
        checkOpen(null);
        checkShape("dst", dst);
        if (dst.memory().isReadOnly()) {
            throw new IllegalArgumentException("dst: memory is read-only");
        }
        Submission.run(device, (scope, s) -> {
            DeviceBuffer b = scope.add(use(null)).buffer();
            HostCopy.download(s, b, dtype, dst);
        });
    }

    /**
     * Copies this tensor to the host.
     *
     * @return a new heap tensor of this dtype and shape holding a copy of the data
     * @throws IllegalStateException when this tensor was closed
     */
    public Tensor toHost() {
        checkOpen(null);
        Tensor t = Tensor.allocate(dtype, batch(), heads(), seqLen(), headDim());
        download(t);
        return t;
    }

    /**
     * Frees the device memory, once the calls using this tensor have finished (it waits for them); calls
     * starting later throw {@link IllegalStateException}. Idempotent, and safe from any thread; after the
     * device was closed at JVM shutdown it only marks the tensor closed (the shutdown freed it).
     */
    @Override
    public void close() {
        synchronized (lifeLock) {
            if (life == Life.OPEN) {
                life = Life.CLOSING;
            }
        }
        device.whileOpen(() -> {
            boolean interrupted = false;
            synchronized (lifeLock) {
                while (users > 0) {
                    try {
                        lifeLock.wait();
                    } catch (InterruptedException e) {
                        interrupted = true; // the memory must still be freed: keep waiting, restore the flag
                    }
                }
                if (life == Life.FREED) {
                    return;
                }
                life = Life.FREED;
            }
            try {
                buffer.close();
            } finally {
                device.unregister(this);
                if (interrupted) {
                    Thread.currentThread().interrupt();
                }
            }
        });
    }

    /**
     * Whether {@link #close()} was called.
     *
     * @return true once {@code close()} has begun: the memory is freed or about to be
     */
    public boolean isClosed() {
        synchronized (lifeLock) {
            return life != Life.OPEN;
        }
    }

    @Override
    public String toString() {
        return "VulkanTensor[" + dtype + " " + Arrays.toString(shape) + (isClosed() ? " closed" : "") + "]";
    }

    /** A use of this tensor's buffer, released by {@link #close()}; see the lifetime invariants. */
    final class Lease implements AutoCloseable {
        private boolean released;

        private Lease() {}

        DeviceBuffer buffer() {
            return buffer;
        }

        @Override
        public void close() {
            if (released) {
                return;
            }
            released = true;
            synchronized (lifeLock) {
                if (--users == 0) {
                    lifeLock.notifyAll();
                }
            }
        }
    }

    /**
     * Takes a lease on the buffer; the caller holds the device's use lock ({@link VulkanDevice#whileUsable}).
     *
     * @param name the argument this tensor is in the caller's call, for the message (null: the tensor's own method)
     * @throws IllegalStateException when {@link #close()} has begun
     */
    Lease use(String name) {
        synchronized (lifeLock) {
            if (life != Life.OPEN) {
                throw closed(name);
            }
            users++;
        }
        return new Lease();
    }

    /** Frees the buffer at device close, which holds the use lock for writing: no lease can exist. */
    void freeAtShutdown() {
        synchronized (lifeLock) {
            if (life == Life.FREED) {
                return;
            }
            life = Life.FREED;
        }
        buffer.close();
    }

    VulkanDevice device() {
        return device;
    }

    /** Whether the buffer was freed (tests: never while a lease is held). */
    boolean isFreed() {
        synchronized (lifeLock) {
            return life == Life.FREED;
        }
    }

    /**
     * The stand-in that shared validation checks.
     *
     * @throws IllegalStateException when this tensor was closed
     */
    Tensor standIn(String name) {
        checkOpen(name);
        return standIn;
    }

    private void checkOpen(String name) {
        if (isClosed()) {
            throw closed(name);
        }
    }

    private IllegalStateException closed(String name) {
        return new IllegalStateException((name == null ? "" : name + ": ") + "VulkanTensor[" + dtype + " "
                + Arrays.toString(shape) + "] was closed; a closed device tensor cannot be used");
    }

    private void checkShape(String name, Tensor t) {
        if (!Arrays.equals(t.shape(), shape)) {
            throw new IllegalArgumentException(
                    name + ": shape " + t.shapeString() + " must equal the device tensor's " + Arrays.toString(shape));
        }
    }
}
