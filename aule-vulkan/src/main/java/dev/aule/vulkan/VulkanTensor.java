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
 * exits). Safe to share between threads, but not to close while a call uses it.
 */
public final class VulkanTensor implements AutoCloseable {
    /**
     * Validation reuses {@link dev.aule.spi.AttentionShape}, which works on {@link Tensor}s: each device tensor
     * gets a stand-in {@code Tensor} over a range of addresses no other device tensor has and nothing ever
     * dereferences, so the shared rules (shapes, dtypes, outputs overlapping inputs) apply unchanged.
     */
    private static final AtomicLong NEXT_STAND_IN_ADDRESS = new AtomicLong(1L << 52);

    private final VulkanBackend owner;
    private final DeviceBuffer buffer;
    private final DType dtype;
    private final long[] shape;
    private final Tensor standIn;
    private volatile boolean closed;

    @SuppressWarnings("restricted") // the stand-in segment is never read or written
    VulkanTensor(VulkanBackend owner, DeviceBuffer buffer, DType dtype, long[] shape) {
        this.owner = owner;
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
     */
    public void upload(Tensor src) {
        checkOpen();
        checkShape("src", src);
        buffer.write(memory -> HostCopy.copy(src, HostCopy.view(memory, dtype, shape)));
    }

    /**
     * Copies this tensor into {@code dst} (any layout and dtype, rounded to its dtype).
     *
     * @param dst a writable host tensor of this tensor's shape
     * @throws IllegalArgumentException when the shapes differ or {@code dst} is read-only
     */
    public void download(Tensor dst) {
        checkOpen();
        checkShape("dst", dst);
        if (dst.memory().isReadOnly()) {
            throw new IllegalArgumentException("dst: memory is read-only");
        }
        HostCopy.download(buffer, dtype, dst);
    }

    /**
     * Copies this tensor to the host.
     *
     * @return a new heap tensor of this dtype and shape holding a copy of the data
     */
    public Tensor toHost() {
        Tensor t = Tensor.allocate(dtype, batch(), heads(), seqLen(), headDim());
        download(t);
        return t;
    }

    /** Frees the device memory; later use throws {@link IllegalStateException}. Idempotent. */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        owner.release(this);
        buffer.close();
    }

    /**
     * Whether {@link #close()} was called.
     *
     * @return true once the device memory is freed
     */
    public boolean isClosed() {
        return closed;
    }

    @Override
    public String toString() {
        return "VulkanTensor[" + dtype + " " + Arrays.toString(shape) + (closed ? " closed" : "") + "]";
    }

    DeviceBuffer buffer() {
        checkOpen();
        return buffer;
    }

    Tensor standIn() {
        checkOpen();
        return standIn;
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("this VulkanTensor " + Arrays.toString(shape) + " was closed");
        }
    }

    private void checkShape(String name, Tensor t) {
        if (!Arrays.equals(t.shape(), shape)) {
            throw new IllegalArgumentException(
                    name + ": shape " + t.shapeString() + " must equal the device tensor's " + Arrays.toString(shape));
        }
    }
}
