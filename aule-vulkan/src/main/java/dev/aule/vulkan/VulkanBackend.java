package dev.aule.vulkan;

import dev.aule.spi.AttentionBackend;
import dev.aule.AttentionOptions;
import dev.aule.spi.AttentionShape;
import dev.aule.spi.Availability;
import dev.aule.BackendUnavailableException;
import dev.aule.spi.Capabilities;
import dev.aule.spi.Capabilities.Feature;
import dev.aule.DType;
import dev.aule.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.EnumSet;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.Lock;

/**
 * The {@code vulkan} backend: FlashAttention-2 forward and backward as GLSL compute shaders, compiled
 * with shaderc at run time and run through LWJGL on any Vulkan 1.1 device (AMD, Intel, NVIDIA, Apple
 * through MoltenVK, or Mesa's lavapipe on the CPU).
 *
 * <p>The {@link AttentionBackend} methods take host {@link Tensor}s: each call uploads its inputs,
 * runs, downloads its outputs and frees its device memory. To keep data on the device across calls,
 * use {@link #allocate}/{@link #upload} and the {@link VulkanTensor} overloads of
 * {@link #forward(VulkanTensor, VulkanTensor, VulkanTensor, VulkanTensor, VulkanTensor, AttentionOptions) forward}
 * and {@link #backward(VulkanTensor, VulkanTensor, VulkanTensor, VulkanTensor, VulkanTensor, VulkanTensor,
 * VulkanTensor, VulkanTensor, VulkanTensor, AttentionOptions) backward}.
 *
 * <p>The device is opened once per process, on first use ({@code -Daule.vulkan.device=} index or name
 * substring chooses it), and closed at JVM shutdown. When no loader, device or compiler works, the
 * backend loads anyway and {@link #availability()} says why.
 */
public final class VulkanBackend implements AttentionBackend {
    /** Largest head dim of q, k and v. */
    public static final int MAX_HEAD_DIM = 256;
    /** Priority with a GPU: above {@code cpu} (100), so auto-selection prefers the GPU. */
    public static final int GPU_PRIORITY = 200;
    /** Priority on a CPU device (lavapipe) or without a device: below {@code cpu}, which is faster there. */
    public static final int CPU_DEVICE_PRIORITY = 50;

    private static final Capabilities CAPABILITIES = Capabilities.of(MAX_HEAD_DIM, EnumSet.allOf(DType.class), Feature.BACKWARD);

    /** The process's device, opened on first use; shared by every instance ServiceLoader creates. */
    private static final class Shared {
        static final State STATE = State.open();
    }

    private record State(VulkanDevice device, Availability availability, Set<VulkanTensor> live) {
        static State open() {
            String missing = VulkanLoader.missingReason();
            if (missing != null) {
                return new State(null, Availability.unavailable(missing), Set.of());
            }
            VulkanDevice device = null;
            try {
                device = VulkanDevice.open();
                // Compile one kernel now so a broken shaderc shows up as "unavailable", not as a failed call.
                AttentionKernels.checkLimits(device.info(), new AttentionShape(1, 1, 1, 1, 1, 1, 1), false, DType.F32);
                device.pipelines().pipeline(Variant.of(Kernel.DELTA, TilePlan.elementwise(device.info()),
                        Map.of("O_TYPE", 0, "DO_TYPE", 0)));
                Set<VulkanTensor> live = ConcurrentHashMap.newKeySet();
                VulkanDevice opened = device;
                Runtime.getRuntime().addShutdownHook(new Thread(() -> closeAll(opened, live), "aule-vulkan-shutdown"));
                return new State(device, Availability.available(device.info().summary()), live);
            } catch (Throwable t) {
                if (device != null) {
                    try {
                        device.close();
                    } catch (Throwable ignored) {
                        // already failing: report the first cause
                    }
                }
                return new State(null, Availability.unavailable(reason(t)), Set.of());
            }
        }

        private static void closeAll(VulkanDevice device, Set<VulkanTensor> live) {
            for (VulkanTensor t : live.toArray(VulkanTensor[]::new)) {
                t.close();
            }
            device.close();
        }

        private static String reason(Throwable t) {
            String message = t.getMessage() == null ? t.getClass().getSimpleName() : t.getMessage();
            if (t instanceof UnsatisfiedLinkError || message.contains("libvulkan") || message.contains("vulkan-1")) {
                return VulkanLoader.noLoader(message);
            }
            return t instanceof VulkanException ? message : t.getClass().getSimpleName() + ": " + message;
        }
    }

    /** Called by {@link java.util.ServiceLoader}; opens nothing until the backend is used. */
    public VulkanBackend() {
    }

    @Override
    public String name() {
        return "vulkan";
    }

    @Override
    public String description() {
        State s = Shared.STATE;
        return "FlashAttention-2 as Vulkan compute shaders (GLSL, shaderc at run time)"
                + (s.device != null ? " on " + s.device.info().name() : "");
    }

    @Override
    public int priority() {
        State s = Shared.STATE;
        return s.device != null && !s.device.info().isCpu() ? GPU_PRIORITY : CPU_DEVICE_PRIORITY;
    }

    @Override
    public Availability availability() {
        return Shared.STATE.availability;
    }

    @Override
    public Capabilities capabilities() {
        return CAPABILITIES;
    }

    @Override
    public void forward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, AttentionOptions options) {
        AttentionShape shape = AttentionShape.forward(q, k, v, out, lse, options, CAPABILITIES);
        VulkanDevice device = device();
        AttentionKernels.checkLimits(device.info(), shape, false, q.dtype(), k.dtype(), v.dtype());
        Lock use = device.useLock().readLock();
        use.lock();
        try (Scope scope = new Scope()) {
            device.checkUsable();
            DeviceBuffer qb = scope.add(HostCopy.upload(device, q));
            DeviceBuffer kb = scope.add(HostCopy.upload(device, k));
            DeviceBuffer vb = scope.add(HostCopy.upload(device, v));
            DeviceBuffer ob = scope.add(DeviceBuffer.allocate(device, HostCopy.bytes(DType.F32, out.shape())));
            DeviceBuffer lb = scope.add(DeviceBuffer.allocate(device, lse == null ? 4 : HostCopy.bytes(DType.F32, lse.shape())));
            DeviceBuffer slopes = scope.add(slopes(device, options));
            try (Submission s = new Submission(device)) {
                AttentionKernels.forward(device, s, shape, options, new AttentionKernels.InputTypes(q.dtype(), k.dtype(),
                        v.dtype()), qb, kb, vb, ob, lb, lse != null, slopes);
                s.submitAndWait();
            }
            HostCopy.download(ob, DType.F32, out);
            if (lse != null) {
                HostCopy.download(lb, DType.F32, lse);
            }
        } finally {
            use.unlock();
        }
    }

    @Override
    public void backward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor dOut, Tensor lse, Tensor dq, Tensor dk,
                         Tensor dv, AttentionOptions options) {
        AttentionShape shape = AttentionShape.backward(q, k, v, out, dOut, lse, dq, dk, dv, options, CAPABILITIES);
        VulkanDevice device = device();
        AttentionKernels.checkLimits(device.info(), shape, true, q.dtype(), k.dtype(), v.dtype());
        Lock use = device.useLock().readLock();
        use.lock();
        try (Scope scope = new Scope()) {
            device.checkUsable();
            DeviceBuffer qb = scope.add(HostCopy.upload(device, q));
            DeviceBuffer kb = scope.add(HostCopy.upload(device, k));
            DeviceBuffer vb = scope.add(HostCopy.upload(device, v));
            DeviceBuffer ob = scope.add(HostCopy.upload(device, out));
            DeviceBuffer dob = scope.add(HostCopy.upload(device, dOut));
            DeviceBuffer lb = scope.add(HostCopy.upload(device, lse));
            DeviceBuffer delta = scope.add(DeviceBuffer.allocate(device, HostCopy.bytes(DType.F32, lse.shape())));
            DeviceBuffer slopes = scope.add(slopes(device, options));
            DeviceBuffer dqb = scope.add(DeviceBuffer.allocate(device, HostCopy.bytes(DType.F32, dq.shape())));
            DeviceBuffer dkb = scope.add(DeviceBuffer.allocate(device, HostCopy.bytes(DType.F32, dk.shape())));
            DeviceBuffer dvb = scope.add(DeviceBuffer.allocate(device, HostCopy.bytes(DType.F32, dv.shape())));
            try (Submission s = new Submission(device)) {
                AttentionKernels.backward(device, s, shape, options, new AttentionKernels.InputTypes(q.dtype(),
                        k.dtype(), v.dtype()), out.dtype(), dOut.dtype(), qb, kb, vb, ob, dob, lb, delta, slopes, dqb,
                        dkb, dvb);
                s.submitAndWait();
            }
            HostCopy.download(dqb, DType.F32, dq);
            HostCopy.download(dkb, DType.F32, dk);
            HostCopy.download(dvb, DType.F32, dv);
        } finally {
            use.unlock();
        }
    }

    /**
     * A zeroed device tensor, contiguous BHSD.
     *
     * @throws IllegalArgumentException when an extent is below 1 or it exceeds the device's
     *                                  {@code maxStorageBufferRange}
     */
    public VulkanTensor allocate(DType dtype, int batch, int heads, int seq, int headDim) {
        Objects.requireNonNull(dtype, "dtype");
        long[] shape = {batch, heads, seq, headDim};
        for (long extent : shape) {
            if (extent < 1) {
                throw new IllegalArgumentException("shape: every extent of [batch, heads, seq, headDim] must be >= 1, got "
                        + java.util.Arrays.toString(shape));
            }
        }
        VulkanDevice device = device();
        long bytes = HostCopy.bytes(dtype, shape);
        if (bytes > device.info().maxStorageBufferRange()) {
            throw new IllegalArgumentException("shape: " + java.util.Arrays.toString(shape) + " of " + dtype + " is "
                    + (bytes >> 20) + " MiB, over the device's maxStorageBufferRange of "
                    + (device.info().maxStorageBufferRange() >> 20) + " MiB on " + device.info().name()
                    + "; split it over batches or heads");
        }
        Lock use = device.useLock().readLock();
        use.lock();
        try {
            device.checkUsable();
            DeviceBuffer buffer = DeviceBuffer.allocate(device, bytes);
            try {
                buffer.write(memory -> memory.fill((byte) 0));
                VulkanTensor t = new VulkanTensor(this, buffer, dtype, shape);
                Shared.STATE.live.add(t);
                return t;
            } catch (RuntimeException e) {
                buffer.close();
                throw e;
            }
        } finally {
            use.unlock();
        }
    }

    /** A device tensor holding a copy of {@code src} in {@code src}'s dtype. */
    public VulkanTensor upload(Tensor src) {
        Objects.requireNonNull(src, "src");
        VulkanTensor t = allocate(src.dtype(), src.batch(), src.heads(), src.seqLen(), src.headDim());
        try {
            t.upload(src);
            return t;
        } catch (RuntimeException e) {
            t.close();
            throw e;
        }
    }

    /**
     * Forward on device tensors: the same contract as {@link #forward(Tensor, Tensor, Tensor, Tensor, Tensor,
     * AttentionOptions)}, with nothing copied to or from the host. A 16-bit {@code out} is computed in F32 and
     * rounded on the device.
     */
    public void forward(VulkanTensor q, VulkanTensor k, VulkanTensor v, VulkanTensor out, VulkanTensor lse,
                        AttentionOptions options) {
        Objects.requireNonNull(out, "out");
        checkOwned(q, "q", k, "k", v, "v", out, "out", lse, "lse");
        AttentionShape shape = AttentionShape.forward(q.standIn(), k.standIn(), v.standIn(), out.standIn(),
                lse == null ? null : lse.standIn(), options, CAPABILITIES);
        VulkanDevice device = device();
        AttentionKernels.checkLimits(device.info(), shape, false, q.dtype(), k.dtype(), v.dtype());
        Lock use = device.useLock().readLock();
        use.lock();
        try (Scope scope = new Scope()) {
            device.checkUsable();
            DeviceBuffer ob = out.dtype() == DType.F32 ? out.buffer()
                    : scope.add(DeviceBuffer.allocate(device, HostCopy.bytes(DType.F32, out.shape())));
            DeviceBuffer lb = lse != null ? lse.buffer() : scope.add(DeviceBuffer.allocate(device, 4));
            DeviceBuffer slopes = scope.add(slopes(device, options));
            try (Submission s = new Submission(device)) {
                AttentionKernels.forward(device, s, shape, options, new AttentionKernels.InputTypes(q.dtype(), k.dtype(),
                        v.dtype()), q.buffer(), k.buffer(), v.buffer(), ob, lb, lse != null, slopes);
                if (out.dtype() != DType.F32) {
                    AttentionKernels.pack16(device, s, shape, ob, out.buffer(), out.dtype(), elements(out));
                }
                s.submitAndWait();
            }
        } finally {
            use.unlock();
        }
    }

    /** Backward on device tensors; 16-bit gradients are computed in F32 and rounded on the device. */
    public void backward(VulkanTensor q, VulkanTensor k, VulkanTensor v, VulkanTensor out, VulkanTensor dOut,
                         VulkanTensor lse, VulkanTensor dq, VulkanTensor dk, VulkanTensor dv, AttentionOptions options) {
        Objects.requireNonNull(out, "out");
        Objects.requireNonNull(dOut, "dOut");
        Objects.requireNonNull(lse, "lse");
        Objects.requireNonNull(dq, "dq");
        Objects.requireNonNull(dk, "dk");
        Objects.requireNonNull(dv, "dv");
        checkOwned(q, "q", k, "k", v, "v", out, "out", dOut, "dOut", lse, "lse", dq, "dq", dk, "dk", dv, "dv");
        AttentionShape shape = AttentionShape.backward(q.standIn(), k.standIn(), v.standIn(), out.standIn(),
                dOut.standIn(), lse.standIn(), dq.standIn(), dk.standIn(), dv.standIn(), options, CAPABILITIES);
        VulkanDevice device = device();
        AttentionKernels.checkLimits(device.info(), shape, true, q.dtype(), k.dtype(), v.dtype());
        Lock use = device.useLock().readLock();
        use.lock();
        try (Scope scope = new Scope()) {
            device.checkUsable();
            DeviceBuffer delta = scope.add(DeviceBuffer.allocate(device, HostCopy.bytes(DType.F32, lse.shape())));
            DeviceBuffer slopes = scope.add(slopes(device, options));
            DeviceBuffer[] grads = new DeviceBuffer[3];
            VulkanTensor[] targets = {dq, dk, dv};
            for (int i = 0; i < 3; i++) {
                grads[i] = targets[i].dtype() == DType.F32 ? targets[i].buffer()
                        : scope.add(DeviceBuffer.allocate(device, HostCopy.bytes(DType.F32, targets[i].shape())));
            }
            try (Submission s = new Submission(device)) {
                AttentionKernels.backward(device, s, shape, options, new AttentionKernels.InputTypes(q.dtype(),
                        k.dtype(), v.dtype()), out.dtype(), dOut.dtype(), q.buffer(), k.buffer(), v.buffer(),
                        out.buffer(), dOut.buffer(), lse.buffer(), delta, slopes, grads[0], grads[1], grads[2]);
                for (int i = 0; i < 3; i++) {
                    if (targets[i].dtype() != DType.F32) {
                        AttentionKernels.pack16(device, s, shape, grads[i], targets[i].buffer(), targets[i].dtype(),
                                elements(targets[i]));
                    }
                }
                s.submitAndWait();
            }
        } finally {
            use.unlock();
        }
    }

    /** The device this backend runs on, or the reason it has none. */
    VulkanDevice device() {
        State s = Shared.STATE;
        if (s.device == null) {
            throw new BackendUnavailableException("backend 'vulkan' is not available: " + s.availability.reason());
        }
        return s.device;
    }

    void release(VulkanTensor t) {
        Shared.STATE.live.remove(t);
    }

    private static long elements(VulkanTensor t) {
        long[] s = t.shape();
        return s[0] * s[1] * s[2] * s[3];
    }

    /** One ALiBi slope per query head, or a placeholder word the kernels never read. */
    private static DeviceBuffer slopes(VulkanDevice device, AttentionOptions options) {
        float[] slopes = options.hasAlibi() ? options.alibiSlopes() : new float[1];
        DeviceBuffer buffer = DeviceBuffer.allocate(device, (long) slopes.length * Float.BYTES);
        try {
            buffer.write(memory -> MemorySegment.copy(slopes, 0, memory, java.lang.foreign.ValueLayout.JAVA_FLOAT, 0,
                    slopes.length));
            return buffer;
        } catch (RuntimeException e) {
            buffer.close();
            throw e;
        }
    }

    /** Every device tensor must be open and come from this process's device. */
    private void checkOwned(Object... namedTensors) {
        for (int i = 0; i < namedTensors.length; i += 2) {
            VulkanTensor t = (VulkanTensor) namedTensors[i];
            String name = (String) namedTensors[i + 1];
            if (t == null) {
                if (!name.equals("lse")) {
                    throw new NullPointerException(name);
                }
                continue;
            }
            if (t.isClosed()) {
                throw new IllegalArgumentException(name + ": this VulkanTensor was closed");
            }
        }
    }
}
