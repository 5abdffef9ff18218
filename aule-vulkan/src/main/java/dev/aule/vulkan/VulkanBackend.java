package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.BackendUnavailableException;
import dev.aule.DType;
import dev.aule.Gradients;
import dev.aule.Tensor;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.AttentionShape;
import dev.aule.spi.Availability;
import dev.aule.spi.BackwardInputs;
import dev.aule.spi.Capabilities;
import dev.aule.spi.Capabilities.Feature;

import java.lang.foreign.MemorySegment;
import java.util.EnumSet;
import java.util.Map;
import java.util.Objects;

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
 * VulkanTensor, VulkanTensor, VulkanTensor, AttentionOptions) backward}; for serving, the {@link VulkanTensor}
 * overloads of {@code forwardCached} and {@code forwardPaged} read device-resident caches, which
 * {@link VulkanTensor#uploadRows} extends a step at a time.
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

    private static final Capabilities CAPABILITIES = Capabilities.of(
            MAX_HEAD_DIM,
            EnumSet.allOf(DType.class),
            Feature.BACKWARD,
            Feature.MASKS_FORWARD,
            Feature.MASKS_BACKWARD,
            Feature.SINKS,
            Feature.QUANTIZED_KV,
            // Every serving entry point runs on the device. Selection keeps calls on host-memory caches off it
            // (DEVICE_MEMORY, ServingPredicates.serving): device caches reach it through KvCache.allocate(this, ...).
            Feature.SERVING,
            Feature.DEVICE_MEMORY);

    /** The process's device, opened on first use; shared by every instance ServiceLoader creates. */
    private static final class Shared {
        static final State STATE = State.open();
    }

    /** A device and what {@link #availability()} says of it; the device is null when unavailable. */
    private record State(VulkanDevice device, Availability availability) {
        /** Runs on an already opened device (tests); its owner closes it. */
        static State of(VulkanDevice device) {
            checkCoop(device);
            return new State(
                    device,
                    Availability.available(
                            device.info().summary() + "; " + device.coopStatus().summary()));
        }

        /** The coop kernel's first-use check on {@code device} (instant on a device without cooperative matrices). */
        private static void checkCoop(VulkanDevice device) {
            device.coopStatus(CoopCheck.run(
                    device.info(),
                    device.coopOpenFailure(),
                    (q, k, v, out, lse, options) -> forwardHost(
                            device,
                            AttentionShape.forward(q, k, v, out, lse, options, CAPABILITIES),
                            q,
                            k,
                            v,
                            out,
                            lse,
                            options,
                            CoopCheck.UNDER_CHECK)));
        }

        static State open() {
            String missing = VulkanLoader.missingReason();
            if (missing != null) {
                return new State(null, Availability.unavailable(missing));
            }
            VulkanDevice device = null;
            try {
                device = VulkanDevice.open();
                // Too little shared memory for the smallest forward tile shows up as "unavailable" too.
                TilePlan.forward(device.info(), TilePlan.BUCKETS[0]);
                // Compile one kernel now so a broken shaderc shows up as "unavailable", not as a failed call.
                device.pipelines()
                        .pipeline(Variant.of(
                                Kernel.DELTA, TilePlan.elementwise(device.info()), Map.of("O_TYPE", 0, "DO_TYPE", 0)));
                // Shutdown waits for the calls in flight, then frees the live tensors and the device (see
                // VulkanDevice).
                State state = of(device);
                if (device.lost()) {
                    // The coop kernel's check lost the device: start over on a fresh one that does not use it.
                    String why = device.coopStatus().reason();
                    device.close();
                    device = VulkanDevice.open();
                    device.coopStatus(new CoopCheck.Result(false, why + "; the device was lost and opened again"));
                    state = new State(
                            device,
                            Availability.available(device.info().summary() + "; "
                                    + device.coopStatus().summary()));
                }
                Runtime.getRuntime().addShutdownHook(new Thread(device::close, "aule-vulkan-shutdown"));
                return state;
            } catch (Throwable t) {
                if (device != null) {
                    try {
                        device.close();
                    } catch (Throwable ignored) {
                        // already failing: report the first cause
                    }
                }
                return new State(null, Availability.unavailable(reason(t)));
            }
        }

        private static String reason(Throwable t) {
            String message = t.getMessage() == null ? t.getClass().getSimpleName() : t.getMessage();
            if (t instanceof UnsatisfiedLinkError || message.contains("libvulkan") || message.contains("vulkan-1")) {
                return VulkanLoader.noLoader(message);
            }
            return t instanceof VulkanException ? message : t.getClass().getSimpleName() + ": " + message;
        }
    }

    /** The device this instance runs on; null: the process's shared one ({@link Shared}), opened on first use. */
    private final State own;

    /** Called by {@link java.util.ServiceLoader}; opens nothing until the backend is used. */
    public VulkanBackend() {
        this.own = null;
    }

    /** A backend on {@code device}, which the caller opened and closes (tests of a second device). */
    VulkanBackend(VulkanDevice device) {
        this.own = State.of(device);
    }

    private State state() {
        return own != null ? own : Shared.STATE;
    }

    @Override
    public String name() {
        return "vulkan";
    }

    @Override
    public String description() {
        State s = state();
        return "FlashAttention-2 as Vulkan compute shaders (GLSL, shaderc at run time)"
                + (s.device != null ? " on " + s.device.info().name() : "")
                + "; forward kernels: decode (GQA group packed, keys split, then merged; on a CPU device without"
                + " shared memory) when Sq * Hq / Hkv <= "
                + TilePlan.DECODE_MAX_ROWS + " and head dim <= " + TilePlan.DECODE_MAX_HD
                + ", else the cooperative-matrix forward where the device's kernel-table row says so and its"
                + " first-use check passed (F16 q, k, v; head dim <= 128), else the register-blocked tiled forward (-D"
                + AttentionKernels.KERNEL_PROPERTY
                + "=blocked|forward|decode|decode-direct|coop forces one; forward: the plain tiled kernel); serving"
                + " (cached, paged, packed) on the device when forced or called directly, not advertised";
    }

    @Override
    public int priority() {
        State s = state();
        return s.device != null && !s.device.info().isCpu() ? GPU_PRIORITY : CPU_DEVICE_PRIORITY;
    }

    @Override
    public Availability availability() {
        return state().availability;
    }

    @Override
    public Capabilities capabilities() {
        return CAPABILITIES;
    }

    @Override
    public void forward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, AttentionOptions options) {
        AttentionShape shape = AttentionShape.forward(q, k, v, out, lse, options, CAPABILITIES);
        forwardHost(device(), shape, q, k, v, out, lse, options, null);
    }

    /**
     * The host-tensor forward on {@code device}; {@code coopCheck} non-null runs the coop kernel as if its check
     * had given that status ({@link CoopCheck}'s own runs), null the device's kernel choice.
     */
    private static void forwardHost(
            VulkanDevice device,
            AttentionShape shape,
            Tensor q,
            Tensor k,
            Tensor v,
            Tensor out,
            Tensor lse,
            AttentionOptions options,
            CoopCheck.Result coopCheck) {
        AttentionKernels.checkLimits(
                device.info(),
                shape,
                false,
                new AttentionKernels.CallTypes(q.dtype(), k.dtype(), v.dtype(), out.dtype(), null));
        DeviceMasks masks = DeviceMasks.of(device.info(), shape, options);
        Submission.run(device, (scope, s) -> {
            DeviceBuffer qb = HostCopy.upload(device, scope, s, q);
            DeviceBuffer kb = HostCopy.upload(device, scope, s, k);
            DeviceBuffer vb = HostCopy.upload(device, scope, s, v);
            DeviceBuffer ob = scope.add(DeviceBuffer.allocate(device, HostCopy.bytes(DType.F32, out.shape())));
            DeviceBuffer lb =
                    scope.add(DeviceBuffer.allocate(device, lse == null ? 4 : HostCopy.bytes(DType.F32, lse.shape())));
            DeviceBuffer slopes =
                    options.hasAlibi() ? slopes(device, scope, s, options) : kb; // k: a bound placeholder never read
            MaskedForward.forward(
                    masks,
                    device,
                    scope,
                    s,
                    shape,
                    options,
                    new AttentionKernels.InputTypes(q.dtype(), k.dtype(), v.dtype()),
                    qb,
                    kb,
                    vb,
                    ob,
                    lb,
                    lse != null,
                    slopes,
                    coopCheck != null ? coopCheck : device.coopStatus(),
                    coopCheck != null ? "coop" : AttentionKernels.forcedKernel());
            HostCopy.download(s, ob, DType.F32, out);
            if (lse != null) {
                HostCopy.download(s, lb, DType.F32, lse);
            }
        });
    }

    @Override
    public void backward(BackwardInputs in, Gradients grads, AttentionOptions options) {
        AttentionShape shape = AttentionShape.backward(in, grads, options, CAPABILITIES);
        Tensor q = in.q();
        Tensor k = in.k();
        Tensor v = in.v();
        Tensor out = in.out();
        Tensor dOut = in.dOut();
        Tensor lse = in.lse();
        Tensor dq = grads.dq();
        Tensor dk = grads.dk();
        Tensor dv = grads.dv();
        VulkanDevice device = deviceFitting(
                shape,
                true,
                new AttentionKernels.CallTypes(q.dtype(), k.dtype(), v.dtype(), out.dtype(), dOut.dtype()));
        DeviceMasks masks = DeviceMasks.forBackward(device.info(), shape, options);
        Submission.run(device, (scope, s) -> {
            DeviceBuffer qb = HostCopy.upload(device, scope, s, q);
            DeviceBuffer kb = HostCopy.upload(device, scope, s, k);
            DeviceBuffer vb = HostCopy.upload(device, scope, s, v);
            DeviceBuffer ob = HostCopy.upload(device, scope, s, out);
            DeviceBuffer dob = HostCopy.upload(device, scope, s, dOut);
            DeviceBuffer lb = HostCopy.upload(device, scope, s, lse);
            DeviceBuffer delta = scope.add(DeviceBuffer.allocate(device, HostCopy.bytes(DType.F32, lse.shape())));
            DeviceBuffer slopes =
                    options.hasAlibi() ? slopes(device, scope, s, options) : kb; // k: a bound placeholder never read
            DeviceBuffer dqb = scope.add(DeviceBuffer.allocate(device, HostCopy.bytes(DType.F32, dq.shape())));
            DeviceBuffer dkb = scope.add(DeviceBuffer.allocate(device, HostCopy.bytes(DType.F32, dk.shape())));
            DeviceBuffer dvb = scope.add(DeviceBuffer.allocate(device, HostCopy.bytes(DType.F32, dv.shape())));
            AttentionKernels.backward(
                    device,
                    s,
                    shape,
                    options,
                    new AttentionKernels.InputTypes(q.dtype(), k.dtype(), v.dtype()),
                    out.dtype(),
                    dOut.dtype(),
                    qb,
                    kb,
                    vb,
                    ob,
                    dob,
                    lb,
                    delta,
                    slopes,
                    dqb,
                    dkb,
                    dvb,
                    MaskedBackward.upload(device, scope, s, masks, kb));
            HostCopy.download(s, dqb, DType.F32, dq);
            HostCopy.download(s, dkb, DType.F32, dk);
            HostCopy.download(s, dvb, DType.F32, dv);
        });
    }

    /**
     * The device time of this thread's last call that ran commands on the device, measured by timestamps the
     * call's submission writes before its first command and after its last: the kernels, barriers and copies of
     * that one submission, without the host's recording, submit and wait. Empty when the device's compute queue
     * has no timestamps or no such call ran on this thread yet.
     *
     * @return nanoseconds, or empty
     */
    public java.util.OptionalLong lastDeviceNanos() {
        long nanos = device().lastDeviceNanos();
        return nanos < 0 ? java.util.OptionalLong.empty() : java.util.OptionalLong.of(nanos);
    }

    /**
     * A zeroed device tensor, contiguous BHSD.
     *
     * @param dtype   its storage type
     * @param batch   batch size
     * @param heads   number of heads
     * @param seq     sequence length
     * @param headDim head dim
     * @return the tensor; close it to free its device memory
     * @throws IllegalArgumentException when an extent is below 1 or it exceeds the device's
     *                                  {@code maxStorageBufferRange}
     */
    public VulkanTensor allocate(DType dtype, int batch, int heads, int seq, int headDim) {
        Objects.requireNonNull(dtype, "dtype");
        long[] shape = {batch, heads, seq, headDim};
        for (long extent : shape) {
            if (extent < 1) {
                throw new IllegalArgumentException(
                        "shape: every extent of [batch, heads, seq, headDim] must be >= 1, got "
                                + java.util.Arrays.toString(shape));
            }
        }
        VulkanDevice device = device();
        long bytes = HostCopy.bytes(dtype, shape);
        if (bytes > device.info().maxStorageBufferRange()) {
            throw new IllegalArgumentException("shape: " + java.util.Arrays.toString(shape) + " of " + dtype + " is "
                    + (bytes >> 20) + " MiB, over the device's maxStorageBufferRange of "
                    + (device.info().maxStorageBufferRange() >> 20) + " MiB on "
                    + device.info().name()
                    + "; split it over batches or heads");
        }
        // Registered under the use lock once the fill finished; freed by the scope if the fill fails.
        return device.whileUsable(() -> {
            VulkanTensor t = Submission.call(device, (scope, s) -> {
                DeviceBuffer buffer = scope.keepOnSuccess(DeviceBuffer.allocate(device, bytes));
                s.zero(buffer);
                return new VulkanTensor(device, buffer, dtype, shape);
            });
            device.register(t);
            return t;
        });
    }

    /**
     * A device tensor holding a copy of {@code src} in {@code src}'s dtype.
     *
     * @param src the host tensor to copy, in any layout
     * @return the tensor; close it to free its device memory
     */
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
     *
     * @param q       queries {@code [B, Hq, Sq, D]}
     * @param k       keys {@code [B, Hkv, Sk, D]}
     * @param v       values {@code [B, Hkv, Sk, Dv]}
     * @param out     the output {@code [B, Hq, Sq, Dv]}, written
     * @param lse     the F32 log-sum-exp {@code [B, Hq, Sq, 1]}, written, or null when not wanted
     * @param options mask, scale and the other options
     * @throws IllegalArgumentException when a tensor lives on another device than this backend's, or as the
     *                                  host overload throws
     * @throws IllegalStateException    when a tensor was closed (also when it is closed while this call waits
     *                                  to start; once it runs, closing waits for it)
     */
    public void forward(
            VulkanTensor q,
            VulkanTensor k,
            VulkanTensor v,
            VulkanTensor out,
            VulkanTensor lse,
            AttentionOptions options) {
        VulkanDevice device = device();
        AttentionShape shape = AttentionShape.forward(
                standIn(device, q, "q"),
                standIn(device, k, "k"),
                standIn(device, v, "v"),
                standIn(device, out, "out"),
                lse == null ? null : standIn(device, lse, "lse"),
                options,
                CAPABILITIES);
        AttentionKernels.checkLimits(
                device.info(),
                shape,
                false,
                new AttentionKernels.CallTypes(q.dtype(), k.dtype(), v.dtype(), out.dtype(), null));
        DeviceMasks masks = DeviceMasks.of(device.info(), shape, options);
        Submission.run(device, (scope, s) -> {
            // Leases first: a tensor closed meanwhile fails the call here, before anything is written.
            DeviceBuffer qb = use(scope, q, "q");
            DeviceBuffer kb = use(scope, k, "k");
            DeviceBuffer vb = use(scope, v, "v");
            DeviceBuffer outb = use(scope, out, "out");
            DeviceBuffer lb = lse != null ? use(scope, lse, "lse") : scope.add(DeviceBuffer.allocate(device, 4));
            DeviceBuffer ob = f32(device, scope, out, outb);
            DeviceBuffer slopes =
                    options.hasAlibi() ? slopes(device, scope, s, options) : kb; // k: a bound placeholder never read
            MaskedForward.forward(
                    masks,
                    device,
                    scope,
                    s,
                    shape,
                    options,
                    new AttentionKernels.InputTypes(q.dtype(), k.dtype(), v.dtype()),
                    qb,
                    kb,
                    vb,
                    ob,
                    lb,
                    lse != null,
                    slopes);
            pack16(device, s, shape, ob, out, outb);
        });
    }

    /**
     * Backward on device tensors: the same contract as {@link #backward(BackwardInputs, Gradients,
     * AttentionOptions)}, with nothing copied to or from the host. 16-bit
     * gradients are computed in F32 and rounded on the device.
     *
     * @param q       the forward's queries
     * @param k       the forward's keys
     * @param v       the forward's values
     * @param out     the forward's output
     * @param dOut    the gradient of the loss with respect to {@code out}
     * @param lse     the forward's F32 log-sum-exp {@code [B, Hq, Sq, 1]}
     * @param dq      the gradient for {@code q}, written
     * @param dk      the gradient for {@code k}, written
     * @param dv      the gradient for {@code v}, written
     * @param options the forward's options
     * @throws IllegalArgumentException when a tensor lives on another device than this backend's, or as the
     *                                  host overload throws
     * @throws IllegalStateException    when a tensor was closed (also when it is closed while this call waits
     *                                  to start; once it runs, closing waits for it)
     */
    public void backward(
            VulkanTensor q,
            VulkanTensor k,
            VulkanTensor v,
            VulkanTensor out,
            VulkanTensor dOut,
            VulkanTensor lse,
            VulkanTensor dq,
            VulkanTensor dk,
            VulkanTensor dv,
            AttentionOptions options) {
        VulkanDevice device = device();
        BackwardInputs in = new BackwardInputs(
                standIn(device, q, "q"),
                standIn(device, k, "k"),
                standIn(device, v, "v"),
                standIn(device, out, "out"),
                standIn(device, dOut, "dOut"),
                standIn(device, lse, "lse"));
        Gradients grads =
                new Gradients(standIn(device, dq, "dq"), standIn(device, dk, "dk"), standIn(device, dv, "dv"));
        AttentionShape shape = AttentionShape.backward(in, grads, options, CAPABILITIES);
        AttentionKernels.checkLimits(
                device.info(),
                shape,
                true,
                new AttentionKernels.CallTypes(q.dtype(), k.dtype(), v.dtype(), out.dtype(), dOut.dtype()));
        DeviceMasks masks = DeviceMasks.forBackward(device.info(), shape, options);
        Submission.run(device, (scope, s) -> {
            // Leases first: a tensor closed meanwhile fails the call here, before anything is written.
            DeviceBuffer qb = use(scope, q, "q");
            DeviceBuffer kb = use(scope, k, "k");
            DeviceBuffer vb = use(scope, v, "v");
            DeviceBuffer outb = use(scope, out, "out");
            DeviceBuffer dOutb = use(scope, dOut, "dOut");
            DeviceBuffer lseb = use(scope, lse, "lse");
            DeviceBuffer dqOwn = use(scope, dq, "dq");
            DeviceBuffer dkOwn = use(scope, dk, "dk");
            DeviceBuffer dvOwn = use(scope, dv, "dv");
            DeviceBuffer delta = scope.add(DeviceBuffer.allocate(device, HostCopy.bytes(DType.F32, lse.shape())));
            DeviceBuffer slopes =
                    options.hasAlibi() ? slopes(device, scope, s, options) : kb; // k: a bound placeholder never read
            DeviceBuffer dqb = f32(device, scope, dq, dqOwn);
            DeviceBuffer dkb = f32(device, scope, dk, dkOwn);
            DeviceBuffer dvb = f32(device, scope, dv, dvOwn);
            AttentionKernels.backward(
                    device,
                    s,
                    shape,
                    options,
                    new AttentionKernels.InputTypes(q.dtype(), k.dtype(), v.dtype()),
                    out.dtype(),
                    dOut.dtype(),
                    qb,
                    kb,
                    vb,
                    outb,
                    dOutb,
                    lseb,
                    delta,
                    slopes,
                    dqb,
                    dkb,
                    dvb,
                    MaskedBackward.upload(device, scope, s, masks, kb));
            pack16(device, s, shape, dqb, dq, dqOwn);
            pack16(device, s, shape, dkb, dk, dkOwn);
            pack16(device, s, shape, dvb, dv, dvOwn);
        });
    }

    /**
     * Cached attention on the device: each batch entry {@code b} against the first {@code cacheLens[b]} keys of
     * its cache row, in one dispatch for the whole batch (see {@link AttentionBackend#forwardCached(Tensor, Tensor,
     * Tensor, int[], Tensor, Tensor, AttentionOptions)}). The caches are uploaded for the call; to keep them on the
     * device across decode steps, use the {@link VulkanTensor} overload. Auto-selection does not send calls on
     * host-memory caches here ({@link Feature#DEVICE_MEMORY}): each would upload the whole cache.
     */
    @Override
    public void forwardCached(
            Tensor q, Tensor kCache, Tensor vCache, int[] cacheLens, Tensor out, Tensor lse, AttentionOptions options) {
        ServingCalls.cached(device(), CAPABILITIES, q, kCache, vCache, cacheLens, out, lse, options);
    }

    /**
     * Cached attention through row indices and left pads on the device (FlashAttention's {@code cache_batch_idx}
     * and {@code cache_leftpad}; see {@link AttentionBackend#forwardCached(Tensor, Tensor, Tensor, CacheIndex,
     * Tensor, Tensor, AttentionOptions)}): every index, pad and length is validated on a copy before anything is
     * uploaded, and each entry reads its cache row in place (one dispatch for the batch).
     */
    @Override
    public void forwardCached(
            Tensor q,
            Tensor kCache,
            Tensor vCache,
            dev.aule.spi.CacheIndex index,
            Tensor out,
            Tensor lse,
            AttentionOptions options) {
        Objects.requireNonNull(index, "index");
        if (index.isPlain()) {
            forwardCached(q, kCache, vCache, index.cacheLens(), out, lse, options);
            return;
        }
        ServingCalls.indexed(device(), CAPABILITIES, q, kCache, vCache, index, out, lse, options);
    }

    /**
     * Paged attention on the device: keys read through each sequence's block table, which is validated (every
     * block id a context reaches in {@code [0, numBlocks)}) before anything is uploaded (see {@link
     * AttentionBackend#forwardPaged}). The pools are uploaded for the call; see the {@link VulkanTensor} overload.
     */
    @Override
    public void forwardPaged(Tensor q, dev.aule.spi.PagedKv cache, Tensor out, Tensor lse, AttentionOptions options) {
        ServingCalls.paged(device(), CAPABILITIES, q, cache, out, lse, options);
    }

    /**
     * Attention on an INT8 or FP8 cache on the device (see {@link AttentionBackend#forwardQuantized}): the call is
     * validated ({@link dev.aule.spi.QuantizedShapes}) and the device's limits checked before anything is
     * uploaded; the 8-bit codes go to the device as they are, with the validated tables, lengths and scales, and
     * the serving kernels dequantize each code as they load it ({@code decode(code) * scale}), so no widened copy
     * of the cache is made. Every option of the other serving calls applies (causal bottom-right per sequence,
     * windows, softcap, ALiBi, GQA, sink logits).
     */
    @Override
    public void forwardQuantized(
            Tensor q, dev.aule.spi.QuantizedKv cache, Tensor out, Tensor lse, AttentionOptions options) {
        QuantizedCalls.forward(device(), CAPABILITIES, q, cache, out, lse, options);
    }

    /**
     * Packed variable-length attention on the device (see {@link AttentionBackend#forwardVarlen}): the sequences
     * run as cached attention over a padded batch, single-row sequences and longer ones in separate groups, in one
     * submission; every option applies per sequence. Sequences without rows are skipped, rows without keys get 0
     * and an LSE of {@code -inf}.
     */
    @Override
    public void forwardVarlen(
            Tensor q,
            Tensor k,
            Tensor v,
            dev.aule.spi.PackedSequences packed,
            Tensor out,
            Tensor lse,
            AttentionOptions options) {
        ServingCalls.varlen(device(), CAPABILITIES, q, k, v, packed, out, lse, options);
    }

    /**
     * Packed query rows against paged caches on the device (see {@link AttentionBackend#forwardVarlenPaged}):
     * padded as {@link #forwardVarlen} pads them, each sequence's keys read through its own block table, the pools
     * uploaded once per call.
     */
    @Override
    public void forwardVarlenPaged(
            Tensor q, dev.aule.spi.PagedKv cache, int[] cuSeqlensQ, Tensor out, Tensor lse, AttentionOptions options) {
        ServingCalls.varlenPaged(device(), CAPABILITIES, q, cache, cuSeqlensQ, out, lse, options);
    }

    /**
     * The packed backward on the device (see {@link AttentionBackend#backwardVarlen}): everything is validated
     * first, the gradients zeroed (rows of sequences without keys, keys of sequences without rows), then each
     * sequence with rows and keys runs the dense backward on its views, one submission each, so every option
     * applies per sequence exactly as in {@link #forwardVarlen}.
     */
    @Override
    public void backwardVarlen(
            BackwardInputs in, dev.aule.spi.PackedSequences packed, Gradients grads, AttentionOptions options) {
        dev.aule.spi.ServingShapes.VarlenBackwardCall call =
                dev.aule.spi.ServingShapes.varlenBackward(in, packed, grads, options, CAPABILITIES);
        VulkanDevice device = device();
        AttentionKernels.CallTypes types = new AttentionKernels.CallTypes(
                in.q().dtype(),
                in.k().dtype(),
                in.v().dtype(),
                in.out().dtype(),
                in.dOut().dtype());
        for (dev.aule.spi.BackwardSequence sequence : call.sequences()) {
            AttentionKernels.checkLimits(device.info(), call.shapeOf(sequence), true, types);
        }
        grads.dq().fill(0f);
        grads.dk().fill(0f);
        grads.dv().fill(0f);
        for (dev.aule.spi.BackwardSequence sequence : call.sequences()) {
            backward(sequence.inputs(), sequence.grads(), options);
        }
    }

    /**
     * Cached attention on device-resident caches: the contract of {@link #forwardCached(Tensor, Tensor, Tensor,
     * int[], Tensor, Tensor, AttentionOptions)} with nothing copied but the lengths, so a decode step reads its
     * cache where it lives. A device cache is a pair of {@link VulkanTensor}s {@code [B, Hkv, capacity, D]} passed
     * here, or a {@link dev.aule.serving.KvCache} allocated with this backend, which does the same for you.
     *
     * @param q         queries {@code [B, Hq, Sq, D]}
     * @param kCache    the key cache {@code [B, Hkv, capacity, D]}
     * @param vCache    the value cache {@code [B, Hkv, capacity, Dv]}
     * @param cacheLens cached tokens of each batch entry, {@code 0 <= cacheLens[b] <= capacity}; copied
     * @param out       the output {@code [B, Hq, Sq, Dv]}, written
     * @param lse       the F32 log-sum-exp {@code [B, Hq, Sq, 1]}, written, or null
     * @param options   causal (bottom-right per entry), window, scale, softcap, ALiBi; no sinks
     * @throws IllegalArgumentException naming the argument that breaks a rule (a length over the capacity, a tensor
     *                                  of another device); nothing is written then
     * @throws IllegalStateException    when a tensor was closed
     */
    public void forwardCached(
            VulkanTensor q,
            VulkanTensor kCache,
            VulkanTensor vCache,
            int[] cacheLens,
            VulkanTensor out,
            VulkanTensor lse,
            AttentionOptions options) {
        ServingCalls.cached(device(), CAPABILITIES, q, kCache, vCache, cacheLens, out, lse, options);
    }

    /**
     * Cached attention on device-resident caches through row indices and left pads: the contract of {@link
     * #forwardCached(Tensor, Tensor, Tensor, dev.aule.spi.CacheIndex, Tensor, Tensor, AttentionOptions)} with
     * nothing copied but the index arrays; {@code kCache} {@code [Bc, Hkv, capacity, D]} may have another batch
     * than q.
     *
     * @param q       queries {@code [B, Hq, Sq, D]}
     * @param kCache  the key cache {@code [Bc, Hkv, capacity, D]}
     * @param vCache  the value cache {@code [Bc, Hkv, capacity, Dv]}
     * @param index   each entry's end, row and first key in the caches; copied, then validated
     * @param out     the output {@code [B, Hq, Sq, Dv]}, written
     * @param lse     the F32 log-sum-exp {@code [B, Hq, Sq, 1]}, written, or null
     * @param options causal (bottom-right against each entry's visible keys), window, scale, softcap, ALiBi
     * @throws IllegalArgumentException naming the array entry or argument that breaks a rule; nothing is written
     * @throws IllegalStateException    when a tensor was closed
     */
    public void forwardCached(
            VulkanTensor q,
            VulkanTensor kCache,
            VulkanTensor vCache,
            dev.aule.spi.CacheIndex index,
            VulkanTensor out,
            VulkanTensor lse,
            AttentionOptions options) {
        ServingCalls.indexed(device(), CAPABILITIES, q, kCache, vCache, index, out, lse, options);
    }

    /**
     * Paged attention on device-resident pools: the contract of {@link #forwardPaged(Tensor, dev.aule.spi.PagedKv,
     * Tensor, Tensor, AttentionOptions)} with nothing copied but the tables and lengths.
     *
     * @param q           queries {@code [B, Hq, Sq, D]}
     * @param kCache      the key blocks {@code [numBlocks, Hkv, blockSize, D]}
     * @param vCache      the value blocks {@code [numBlocks, Hkv, blockSize, Dv]}
     * @param blockTables each sequence's block ids in position order; copied, then validated
     * @param contextLens cached tokens of each sequence; copied
     * @param out         the output {@code [B, Hq, Sq, Dv]}, written
     * @param lse         the F32 log-sum-exp {@code [B, Hq, Sq, 1]}, written, or null
     * @param options     causal (bottom-right per sequence), window, scale, softcap, ALiBi; no sinks
     * @throws IllegalArgumentException naming the argument that breaks a rule (a block id out of range, a length
     *                                  over its table); nothing is written then
     * @throws IllegalStateException    when a tensor was closed
     */
    public void forwardPaged(
            VulkanTensor q,
            VulkanTensor kCache,
            VulkanTensor vCache,
            int[][] blockTables,
            int[] contextLens,
            VulkanTensor out,
            VulkanTensor lse,
            AttentionOptions options) {
        ServingCalls.paged(device(), CAPABILITIES, q, kCache, vCache, blockTables, contextLens, out, lse, options);
    }

    /**
     * Device-resident storage for {@code KvCache.allocate(backend, ...)} and {@code PagedKvCache.create(backend,
     * ...)}: two zeroed {@link VulkanTensor}s that the cache writes row by row and attention reads in place.
     *
     * @throws IllegalArgumentException when a shape exceeds the device's {@code maxStorageBufferRange}
     * @throws BackendUnavailableException when the backend has no device
     */
    @Override
    public dev.aule.spi.DeviceKv allocateKv(DType dtype, long[] keyShape, long[] valueShape) {
        Objects.requireNonNull(dtype, "dtype");
        return ResidentKv.allocate(this, CAPABILITIES, dtype, keyShape.clone(), valueShape.clone());
    }

    /** The device this backend runs on, or the reason it has none. */
    VulkanDevice device() {
        State s = state();
        if (s.device == null) {
            throw new BackendUnavailableException("backend 'vulkan' is not available: " + s.availability.reason());
        }
        return s.device;
    }

    /** The device, once a call of {@code shape} on these tensors is known to fit its limits. */
    private VulkanDevice deviceFitting(AttentionShape shape, boolean backward, AttentionKernels.CallTypes types) {
        VulkanDevice device = device();
        AttentionKernels.checkLimits(device.info(), shape, backward, types);
        return device;
    }

    /** A lease on {@code t}'s buffer for the rest of the call (the scope releases it); see VulkanTensor. */
    static DeviceBuffer use(Scope scope, VulkanTensor t, String name) {
        return scope.add(t.use(name)).buffer();
    }

    /**
     * Where the kernels write {@code target} in F32: its own buffer {@code own}, or a scratch one rounded by
     * {@link #pack16}.
     */
    static DeviceBuffer f32(VulkanDevice device, Scope scope, VulkanTensor target, DeviceBuffer own) {
        return target.dtype() == DType.F32
                ? own
                : scope.add(DeviceBuffer.allocate(device, HostCopy.bytes(DType.F32, target.shape())));
    }

    /** Rounds the F32 result {@code from} into a 16-bit {@code target}; an F32 target was written in place. */
    static void pack16(
            VulkanDevice device,
            Submission s,
            AttentionShape shape,
            DeviceBuffer from,
            VulkanTensor target,
            DeviceBuffer own) {
        if (target.dtype() != DType.F32) {
            long count = HostCopy.bytes(target.dtype(), target.shape())
                    / target.dtype().byteSize();
            AttentionKernels.pack16(device, s, shape, from, own, target.dtype(), count);
        }
    }

    /** One ALiBi slope per query head, in a buffer of {@code scope} written by {@code s}. */
    static DeviceBuffer slopes(VulkanDevice device, Scope scope, Submission s, AttentionOptions options) {
        float[] slopes = options.alibiSlopes();
        DeviceBuffer buffer = scope.add(DeviceBuffer.allocate(device, (long) slopes.length * Float.BYTES));
        s.write(
                buffer,
                memory -> MemorySegment.copy(
                        slopes, 0, memory, java.lang.foreign.ValueLayout.JAVA_FLOAT, 0, slopes.length));
        return buffer;
    }

    /**
     * The stand-in that shared validation checks for device tensor {@code t}, which must be non-null, open
     * and on {@code device}: buffers of another device cannot be bound there (instances of this backend
     * share the process's device, so their tensors mix freely; one opened on another device does not).
     *
     * @throws IllegalArgumentException naming the argument when it lives on another device
     * @throws IllegalStateException    naming the argument when it was closed
     */
    static Tensor standIn(VulkanDevice device, VulkanTensor t, String name) {
        Objects.requireNonNull(t, name);
        if (t.device() != device) {
            throw new IllegalArgumentException(name + ": " + t + " lives on another Vulkan device ("
                    + t.device().info().name() + ") than this backend's ("
                    + device.info().name()
                    + "); allocate or upload it through a backend on this device");
        }
        return t.standIn(name);
    }
}
