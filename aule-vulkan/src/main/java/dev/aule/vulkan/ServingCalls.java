package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.AttentionShape;
import dev.aule.spi.CacheIndex;
import dev.aule.spi.Capabilities;
import dev.aule.spi.PackedSequences;
import dev.aule.spi.PagedKv;
import dev.aule.spi.SequenceView;
import dev.aule.spi.ServingShapes;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * The serving calls of {@link VulkanBackend}: cached and paged attention on host tensors (caches uploaded per
 * call) and on {@link VulkanTensor}s (caches resident on the device, nothing uploaded but the lengths and
 * tables). Every call validates with {@link ServingShapes} on copies of its lengths and tables, checks the
 * device's limits, and only then allocates; the kernels then read the same copies (see {@link ServingKeys}).
 */
final class ServingCalls {
    private ServingCalls() {}

    static void cached(
            VulkanDevice device,
            Capabilities caps,
            Tensor q,
            Tensor kCache,
            Tensor vCache,
            int[] cacheLens,
            Tensor out,
            Tensor lse,
            AttentionOptions options) {
        int[] lens = cacheLens == null ? null : cacheLens.clone(); // validated and uploaded: the same copy
        AttentionShape shape = ServingShapes.cached(q, kCache, vCache, lens, out, lse, options, caps);
        AttentionKernels.checkLimits(
                device.info(),
                shape,
                false,
                new AttentionKernels.CallTypes(q.dtype(), kCache.dtype(), vCache.dtype(), out.dtype(), null));
        Submission.run(device, (scope, s) -> {
            DeviceBuffer qb = HostCopy.upload(device, scope, s, q);
            DeviceBuffer kb = HostCopy.upload(device, scope, s, kCache);
            DeviceBuffer vb = HostCopy.upload(device, scope, s, vCache);
            ServingKeys keys = ServingKeys.cached(device, scope, s, lens);
            runHost(device, scope, s, shape, options, inputs(q, kCache, vCache), qb, kb, vb, keys, out, lse);
        });
    }

    static void paged(
            VulkanDevice device,
            Capabilities caps,
            Tensor q,
            PagedKv cache,
            Tensor out,
            Tensor lse,
            AttentionOptions options) {
        ServingShapes.PagedCall call = ServingShapes.paged(q, cache, out, lse, options, caps);
        Tensor kCache = cache.kCache();
        Tensor vCache = cache.vCache();
        checkPoolLimits(
                device,
                call.shape(),
                q.dtype(),
                kCache.dtype(),
                kCache.shape(),
                vCache.dtype(),
                vCache.shape(),
                out.dtype());
        Submission.run(device, (scope, s) -> {
            DeviceBuffer qb = HostCopy.upload(device, scope, s, q);
            DeviceBuffer kb = HostCopy.upload(device, scope, s, kCache);
            DeviceBuffer vb = HostCopy.upload(device, scope, s, vCache);
            ServingKeys keys =
                    ServingKeys.paged(device, scope, s, call.blockTables(), call.contextLens(), kCache.seqLen());
            runHost(device, scope, s, call.shape(), options, inputs(q, kCache, vCache), qb, kb, vb, keys, out, lse);
        });
    }

    /**
     * Cached attention through a {@link CacheIndex} with row indices or left pads: entry {@code b} against keys
     * {@code [cacheLeftpad[b], cacheLens[b])} of cache row {@code cacheBatchIdx[b]}, as its own forward over them.
     */
    static void indexed(
            VulkanDevice device,
            Capabilities caps,
            Tensor q,
            Tensor kCache,
            Tensor vCache,
            CacheIndex index,
            Tensor out,
            Tensor lse,
            AttentionOptions options) {
        ServingShapes.CachedCall call = ServingShapes.cached(q, kCache, vCache, index, out, lse, options, caps);
        checkPoolLimits(
                device,
                call.shape(),
                q.dtype(),
                kCache.dtype(),
                kCache.shape(),
                vCache.dtype(),
                vCache.shape(),
                out.dtype());
        Submission.run(device, (scope, s) -> {
            DeviceBuffer qb = HostCopy.upload(device, scope, s, q);
            DeviceBuffer kb = HostCopy.upload(device, scope, s, kCache);
            DeviceBuffer vb = HostCopy.upload(device, scope, s, vCache);
            runHost(
                    device,
                    scope,
                    s,
                    call.shape(),
                    options,
                    inputs(q, kCache, vCache),
                    qb,
                    kb,
                    vb,
                    keys(device, scope, s, call),
                    out,
                    lse);
        });
    }

    /** {@link #indexed(VulkanDevice, Capabilities, Tensor, Tensor, Tensor, CacheIndex, Tensor, Tensor,
     * AttentionOptions)} on device tensors. */
    static void indexed(
            VulkanDevice device,
            Capabilities caps,
            VulkanTensor q,
            VulkanTensor kCache,
            VulkanTensor vCache,
            CacheIndex index,
            VulkanTensor out,
            VulkanTensor lse,
            AttentionOptions options) {
        ServingShapes.CachedCall call = ServingShapes.cached(
                VulkanBackend.standIn(device, q, "q"),
                VulkanBackend.standIn(device, kCache, "kCache"),
                VulkanBackend.standIn(device, vCache, "vCache"),
                index,
                VulkanBackend.standIn(device, out, "out"),
                lse == null ? null : VulkanBackend.standIn(device, lse, "lse"),
                options,
                caps);
        checkPoolLimits(
                device,
                call.shape(),
                q.dtype(),
                kCache.dtype(),
                kCache.shape(),
                vCache.dtype(),
                vCache.shape(),
                out.dtype());
        Submission.run(device, (scope, s) -> {
            Leased b = Leased.of(device, scope, q, kCache, vCache, out, lse);
            runDevice(
                    device,
                    scope,
                    s,
                    call.shape(),
                    options,
                    q,
                    kCache,
                    vCache,
                    out,
                    lse,
                    b,
                    keys(device, scope, s, call));
        });
    }

    static ServingKeys keys(VulkanDevice device, Scope scope, Submission s, ServingShapes.CachedCall call) {
        int[] lens = new int[call.cacheLens().length];
        for (int b = 0; b < lens.length; b++) {
            lens[b] = call.keyLen(b);
        }
        return ServingKeys.indexed(device, scope, s, lens, call.cacheBatchIdx(), call.cacheLeftpad());
    }

    static void cached(
            VulkanDevice device,
            Capabilities caps,
            VulkanTensor q,
            VulkanTensor kCache,
            VulkanTensor vCache,
            int[] cacheLens,
            VulkanTensor out,
            VulkanTensor lse,
            AttentionOptions options) {
        int[] lens = cacheLens == null ? null : cacheLens.clone();
        AttentionShape shape = ServingShapes.cached(
                VulkanBackend.standIn(device, q, "q"),
                VulkanBackend.standIn(device, kCache, "kCache"),
                VulkanBackend.standIn(device, vCache, "vCache"),
                lens,
                VulkanBackend.standIn(device, out, "out"),
                lse == null ? null : VulkanBackend.standIn(device, lse, "lse"),
                options,
                caps);
        AttentionKernels.checkLimits(
                device.info(),
                shape,
                false,
                new AttentionKernels.CallTypes(q.dtype(), kCache.dtype(), vCache.dtype(), out.dtype(), null));
        Submission.run(device, (scope, s) -> {
            Leased b = Leased.of(device, scope, q, kCache, vCache, out, lse);
            ServingKeys keys = ServingKeys.cached(device, scope, s, lens);
            runDevice(device, scope, s, shape, options, q, kCache, vCache, out, lse, b, keys);
        });
    }

    static void paged(
            VulkanDevice device,
            Capabilities caps,
            VulkanTensor q,
            VulkanTensor kCache,
            VulkanTensor vCache,
            int[][] blockTables,
            int[] contextLens,
            VulkanTensor out,
            VulkanTensor lse,
            AttentionOptions options) {
        ServingShapes.PagedCall call = ServingShapes.paged(
                VulkanBackend.standIn(device, q, "q"),
                new PagedKv(
                        VulkanBackend.standIn(device, kCache, "kCache"),
                        VulkanBackend.standIn(device, vCache, "vCache"),
                        blockTables,
                        contextLens),
                VulkanBackend.standIn(device, out, "out"),
                lse == null ? null : VulkanBackend.standIn(device, lse, "lse"),
                options,
                caps);
        checkPoolLimits(
                device,
                call.shape(),
                q.dtype(),
                kCache.dtype(),
                kCache.shape(),
                vCache.dtype(),
                vCache.shape(),
                out.dtype());
        Submission.run(device, (scope, s) -> {
            Leased b = Leased.of(device, scope, q, kCache, vCache, out, lse);
            ServingKeys keys =
                    ServingKeys.paged(device, scope, s, call.blockTables(), call.contextLens(), kCache.seqLen());
            runDevice(device, scope, s, call.shape(), options, q, kCache, vCache, out, lse, b, keys);
        });
    }

    /**
     * Packed sequences as cached attention: each group of sequences becomes a padded batch, sequence {@code g}'s
     * rows at the bottom of its {@code maxQ} query rows and its keys at the start of a cache row of {@code maxK},
     * with its key count as the cache length. Placing the rows at the bottom keeps every option exact: row
     * {@code i} of a sequence of {@code nQ} rows and {@code nK} keys is padded row {@code i + maxQ - nQ}, and the
     * kernels' bottom-right offset {@code nK - maxQ} puts it at key position {@code i + nK - nQ}, the sequence's
     * own. Pad rows are computed and dropped; pad keys are never read. Decode rows (one query) and longer chunks
     * form separate groups ({@link #groups}), so a mixed batch pads its single-row sequences to 1, not to the
     * longest chunk.
     */
    static void varlen(
            VulkanDevice device,
            Capabilities caps,
            Tensor q,
            Tensor k,
            Tensor v,
            PackedSequences packed,
            Tensor out,
            Tensor lse,
            AttentionOptions options) {
        ServingShapes.VarlenCall call = ServingShapes.varlen(q, k, v, packed, out, lse, options, caps);
        List<SequenceView> views = call.sequences();
        int[] rows = new int[views.size()];
        for (int n = 0; n < rows.length; n++) {
            rows[n] = views.get(n).q().seqLen();
        }
        List<int[]> groups = groups(rows);
        List<AttentionShape> shapes = new ArrayList<>();
        for (int[] group : groups) {
            int maxK = 1;
            for (int n : group) {
                maxK = Math.max(maxK, views.get(n).keyLen());
            }
            AttentionShape shape = padded(call.shape(), group.length, maxRows(rows, group), maxK);
            AttentionKernels.checkLimits(
                    device.info(),
                    shape,
                    false,
                    new AttentionKernels.CallTypes(q.dtype(), k.dtype(), v.dtype(), out.dtype(), null));
            shapes.add(shape);
        }
        if (groups.isEmpty()) {
            return; // no sequence has a query row: nothing to write
        }
        AttentionKernels.InputTypes types = inputs(q, k, v);
        Submission.run(device, (scope, s) -> {
            for (int i = 0; i < groups.size(); i++) {
                int[] group = groups.get(i);
                AttentionShape shape = shapes.get(i);
                int[] lens = new int[group.length];
                for (int g = 0; g < lens.length; g++) {
                    lens[g] = views.get(group[g]).keyLen();
                }
                long[] kShape = {group.length, shape.kvHeads(), shape.keyLen(), shape.headDim()};
                long[] vShape = {group.length, shape.kvHeads(), shape.keyLen(), shape.valueDim()};
                DeviceBuffer kb = scope.add(DeviceBuffer.allocate(device, HostCopy.bytes(types.k(), kShape)));
                DeviceBuffer vb = scope.add(DeviceBuffer.allocate(device, HostCopy.bytes(types.v(), vShape)));
                s.write(kb, memory -> packKeys(memory, types.k(), kShape, views, group, true));
                s.write(vb, memory -> packKeys(memory, types.v(), vShape, views, group, false));
                List<Tensor[]> targets = new ArrayList<>();
                for (int n : group) {
                    SequenceView view = views.get(n);
                    targets.add(new Tensor[] {view.q(), view.out(), view.lse()});
                }
                ServingKeys keys = ServingKeys.cached(device, scope, s, lens);
                run(device, scope, s, shape, targets, options, types, kb, vb, keys, lse != null);
            }
        });
    }

    /**
     * Packed query rows against paged caches, as {@link #varlen} pads them: each group a padded batch whose entry
     * {@code g} reads its sequence's keys through its own table. The pools are uploaded once for every group.
     */
    static void varlenPaged(
            VulkanDevice device,
            Capabilities caps,
            Tensor q,
            PagedKv cache,
            int[] cuSeqlensQ,
            Tensor out,
            Tensor lse,
            AttentionOptions options) {
        ServingShapes.VarlenPagedCall call = ServingShapes.varlenPaged(q, cache, cuSeqlensQ, out, lse, options, caps);
        Tensor kCache = cache.kCache();
        Tensor vCache = cache.vCache();
        int[] rows = new int[call.sequences()];
        for (int n = 0; n < rows.length; n++) {
            rows[n] = call.rows(n);
        }
        List<int[]> groups = groups(rows);
        List<AttentionShape> shapes = new ArrayList<>();
        for (int[] group : groups) {
            int maxK = 1;
            for (int n : group) {
                maxK = Math.max(maxK, call.contextLens()[n]);
            }
            AttentionShape shape = padded(call.shape(), group.length, maxRows(rows, group), maxK);
            checkPoolLimits(
                    device,
                    shape,
                    q.dtype(),
                    kCache.dtype(),
                    kCache.shape(),
                    vCache.dtype(),
                    vCache.shape(),
                    out.dtype());
            shapes.add(shape);
        }
        if (groups.isEmpty()) {
            return; // no sequence has a query row: nothing to write
        }
        AttentionKernels.InputTypes types = inputs(q, kCache, vCache);
        Submission.run(device, (scope, s) -> {
            DeviceBuffer kb = HostCopy.upload(device, scope, s, kCache);
            DeviceBuffer vb = HostCopy.upload(device, scope, s, vCache);
            for (int i = 0; i < groups.size(); i++) {
                int[] group = groups.get(i);
                int[] lens = new int[group.length];
                int[][] tables = new int[group.length][];
                List<Tensor[]> targets = new ArrayList<>();
                for (int g = 0; g < group.length; g++) {
                    int n = group[g];
                    lens[g] = call.contextLens()[n];
                    tables[g] = call.blockTables()[n];
                    int q0 = call.cuSeqlensQ()[n];
                    targets.add(new Tensor[] {
                        q.sequence(0, q0, rows[n]),
                        out.sequence(0, q0, rows[n]),
                        lse == null ? null : lse.sequence(0, q0, rows[n])
                    });
                }
                ServingKeys keys = ServingKeys.paged(device, scope, s, tables, lens, kCache.seqLen());
                run(device, scope, s, shapes.get(i), targets, options, types, kb, vb, keys, lse != null);
            }
        });
    }

    /**
     * The sequences with query rows, in two groups: single rows (decode steps) and longer ones (prefill chunks);
     * empty groups left out. Each group is one padded dispatch, so a submission holds at most four.
     */
    private static List<int[]> groups(int[] rows) {
        List<int[]> groups = new ArrayList<>();
        for (boolean single : new boolean[] {true, false}) {
            int[] group = java.util.stream.IntStream.range(0, rows.length)
                    .filter(n -> rows[n] > 0 && (rows[n] == 1) == single)
                    .toArray();
            if (group.length > 0) {
                groups.add(group);
            }
        }
        return groups;
    }

    private static int maxRows(int[] rows, int[] group) {
        int most = 1;
        for (int n : group) {
            most = Math.max(most, rows[n]);
        }
        return most;
    }

    private static AttentionShape padded(AttentionShape packed, int batch, int maxQ, int maxK) {
        return new AttentionShape(
                batch, packed.queryHeads(), packed.kvHeads(), maxQ, maxK, packed.headDim(), packed.valueDim());
    }

    /**
     * One padded group: its query rows uploaded at the bottom of each entry's {@code maxQ} rows, the kernels, and
     * the read-back of the real rows into each target's out and lse ({@code targets}: q, out, lse per entry).
     */
    private static void run(
            VulkanDevice device,
            Scope scope,
            Submission s,
            AttentionShape shape,
            List<Tensor[]> targets,
            AttentionOptions options,
            AttentionKernels.InputTypes types,
            DeviceBuffer kb,
            DeviceBuffer vb,
            ServingKeys keys,
            boolean writeLse) {
        int maxQ = shape.queryLen();
        long[] qShape = {shape.batch(), shape.queryHeads(), maxQ, shape.headDim()};
        long[] oShape = {shape.batch(), shape.queryHeads(), maxQ, shape.valueDim()};
        long[] lShape = {shape.batch(), shape.queryHeads(), maxQ, 1};
        DeviceBuffer qb = scope.add(DeviceBuffer.allocate(device, HostCopy.bytes(types.q(), qShape)));
        // Zeros in the pads, so no stale staging bytes (a NaN, say) sit in rows the kernels compute and drop.
        s.write(qb, memory -> {
            memory.fill((byte) 0);
            Tensor to = HostCopy.view(memory, types.q(), qShape);
            for (int g = 0; g < targets.size(); g++) {
                Tensor rows = targets.get(g)[0];
                HostCopy.copy(rows, to.sequence(g, maxQ - rows.seqLen(), rows.seqLen()));
            }
        });
        DeviceBuffer ob = scope.add(DeviceBuffer.allocate(device, HostCopy.bytes(DType.F32, oShape)));
        DeviceBuffer lb = scope.add(DeviceBuffer.allocate(device, writeLse ? HostCopy.bytes(DType.F32, lShape) : 4));
        DeviceBuffer slopes = options.hasAlibi() ? VulkanBackend.slopes(device, scope, s, options) : kb;
        AttentionKernels.forward(device, scope, s, shape, options, types, qb, kb, vb, ob, lb, writeLse, slopes, keys);
        readRows(s, ob, oShape, targets, 1);
        if (writeLse) {
            readRows(s, lb, lShape, targets, 2);
        }
    }

    /** Copies the real rows of each padded entry of {@code from} into {@code targets.get(g)[which]}. */
    private static void readRows(Submission s, DeviceBuffer from, long[] shape, List<Tensor[]> targets, int which) {
        s.read(from, memory -> {
            Tensor padded = HostCopy.view(memory, DType.F32, shape);
            for (int g = 0; g < targets.size(); g++) {
                Tensor to = targets.get(g)[which];
                HostCopy.copy(padded.sequence(g, (int) shape[2] - to.seqLen(), to.seqLen()), to);
            }
        });
    }

    private static void packKeys(
            MemorySegment memory, DType dtype, long[] shape, List<SequenceView> views, int[] group, boolean keys) {
        memory.fill((byte) 0);
        Tensor to = HostCopy.view(memory, dtype, shape);
        for (int g = 0; g < group.length; g++) {
            SequenceView view = views.get(group[g]);
            if (view.keyLen() > 0) {
                HostCopy.copy(keys ? view.k() : view.v(), to.sequence(g, 0, view.keyLen()));
            }
        }
    }

    /** The buffers of a device-tensor call, leased first so a tensor closed meanwhile fails it before any write. */
    private record Leased(DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer out, DeviceBuffer lse) {
        static Leased of(
                VulkanDevice device,
                Scope scope,
                VulkanTensor q,
                VulkanTensor k,
                VulkanTensor v,
                VulkanTensor out,
                VulkanTensor lse) {
            return new Leased(
                    VulkanBackend.use(scope, q, "q"),
                    VulkanBackend.use(scope, k, "kCache"),
                    VulkanBackend.use(scope, v, "vCache"),
                    VulkanBackend.use(scope, out, "out"),
                    lse != null ? VulkanBackend.use(scope, lse, "lse") : scope.add(DeviceBuffer.allocate(device, 4)));
        }
    }

    /** Uploaded inputs through the kernels into F32 scratch, read back into {@code out} and {@code lse}. */
    static void runHost(
            VulkanDevice device,
            Scope scope,
            Submission s,
            AttentionShape shape,
            AttentionOptions options,
            AttentionKernels.InputTypes types,
            DeviceBuffer qb,
            DeviceBuffer kb,
            DeviceBuffer vb,
            ServingKeys keys,
            Tensor out,
            Tensor lse) {
        DeviceBuffer ob = scope.add(DeviceBuffer.allocate(device, HostCopy.bytes(DType.F32, out.shape())));
        DeviceBuffer lb =
                scope.add(DeviceBuffer.allocate(device, lse == null ? 4 : HostCopy.bytes(DType.F32, lse.shape())));
        DeviceBuffer slopes = options.hasAlibi() ? VulkanBackend.slopes(device, scope, s, options) : kb;
        AttentionKernels.forward(
                device, scope, s, shape, options, types, qb, kb, vb, ob, lb, lse != null, slopes, keys);
        HostCopy.download(s, ob, DType.F32, out);
        if (lse != null) {
            HostCopy.download(s, lb, DType.F32, lse);
        }
    }

    /** Device tensors through the kernels; a 16-bit {@code out} is computed in F32 and rounded on the device. */
    private static void runDevice(
            VulkanDevice device,
            Scope scope,
            Submission s,
            AttentionShape shape,
            AttentionOptions options,
            VulkanTensor q,
            VulkanTensor k,
            VulkanTensor v,
            VulkanTensor out,
            VulkanTensor lse,
            Leased b,
            ServingKeys keys) {
        DeviceBuffer ob = VulkanBackend.f32(device, scope, out, b.out());
        DeviceBuffer slopes = options.hasAlibi() ? VulkanBackend.slopes(device, scope, s, options) : b.k();
        AttentionKernels.forward(
                device,
                scope,
                s,
                shape,
                options,
                new AttentionKernels.InputTypes(q.dtype(), k.dtype(), v.dtype()),
                b.q(),
                b.k(),
                b.v(),
                ob,
                b.lse(),
                lse != null,
                slopes,
                keys);
        VulkanBackend.pack16(device, s, shape, ob, out, b.out());
    }

    static AttentionKernels.InputTypes inputs(Tensor q, Tensor k, Tensor v) {
        return new AttentionKernels.InputTypes(q.dtype(), k.dtype(), v.dtype());
    }

    /**
     * The limits of a paged or indexed call: q and out as a forward's (its key extent counted as 1, since keys
     * live in the pools or cache rows), each pool or cache as one buffer of its own size.
     *
     * @throws IllegalArgumentException naming the pool or tensor and the limit
     */
    static void checkPoolLimits(
            VulkanDevice device,
            AttentionShape shape,
            DType q,
            DType k,
            long[] kPool,
            DType v,
            long[] vPool,
            DType out) {
        AttentionShape rows = new AttentionShape(
                shape.batch(),
                shape.queryHeads(),
                shape.kvHeads(),
                shape.queryLen(),
                1,
                shape.headDim(),
                shape.valueDim());
        AttentionKernels.checkLimits(device.info(), rows, false, new AttentionKernels.CallTypes(q, k, v, out, null));
        checkPool(device, "kCache", k, kPool);
        checkPool(device, "vCache", v, vPool);
    }

    private static void checkPool(VulkanDevice device, String name, DType dtype, long[] shape) {
        long elements = shape[0] * shape[1] * shape[2] * shape[3];
        long bytes = elements * dtype.byteSize();
        if (bytes > device.info().maxStorageBufferRange() || elements >= Integer.MAX_VALUE) {
            throw new IllegalArgumentException(name + ": " + java.util.Arrays.toString(shape) + " of " + dtype + " is "
                    + (bytes >> 20) + " MiB, over the device's maxStorageBufferRange of "
                    + (device.info().maxStorageBufferRange() >> 20) + " MiB on "
                    + device.info().name()
                    + "; use smaller pools");
        }
    }
}
