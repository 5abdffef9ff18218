package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.spi.AttentionShape;
import dev.aule.spi.QuantizedKv;

import java.util.List;
import java.util.Map;

/**
 * Records the kernels of forward and backward into a {@link Submission}, on buffers that already
 * hold contiguous BHSD data: the host path and the device-tensor path share it. Also checks, before
 * anything is allocated, that a call fits the device's buffer and dispatch limits ({@link DeviceLimits}).
 */
final class AttentionKernels {
    private AttentionKernels() {}

    /**
     * The storage types of a forward call's inputs: tensors of {@code q}, {@code k} and {@code v}, or, for a
     * quantized cache ({@code codes} not null; {@code k} and {@code v} then null), q's tensor and the cache's 8-bit
     * codes, read through byte views of their buffers where {@code codes8} (the device's storageBuffer8BitAccess).
     */
    record InputTypes(DType q, DType k, DType v, QuantizedKv.Format codes, boolean codes8) {
        InputTypes(DType q, DType k, DType v) {
            this(q, k, v, null, false);
        }

        /** The types of a quantized call: F32, F16 or BF16 queries against {@code codes}. */
        static InputTypes quantized(DType q, QuantizedKv.Format codes, boolean codes8) {
            return new InputTypes(q, null, null, java.util.Objects.requireNonNull(codes, "codes"), codes8);
        }

        Map<String, Integer> defines() {
            if (codes != null) {
                int type = Variant.codeType(codes);
                return Map.of("Q_TYPE", Variant.typeCode(q), "K_TYPE", type, "V_TYPE", type, "CODES8", codes8 ? 1 : 0);
            }
            return Map.of("Q_TYPE", Variant.typeCode(q), "K_TYPE", Variant.typeCode(k), "V_TYPE", Variant.typeCode(v));
        }
    }

    /** The storage types of a call's tensors; {@code dOut} is null for a forward. */
    record CallTypes(DType q, DType k, DType v, DType out, DType dOut) {}

    /** One buffer a call puts on the device: the argument it holds, its elements and their storage type. */
    private record Footprint(String name, long elements, DType dtype) {}

    /**
     * Rejects a call the device cannot run: a buffer over {@code maxStorageBufferRange}, a grid over
     * {@code maxComputeWorkGroupCount}, or indices over 2^31. The buffers counted are the ones the call
     * really allocates: inputs in their own dtype, out (forward) and the gradients (backward) in F32,
     * which the kernels compute in (16-bit results are rounded afterwards).
     *
     * @throws IllegalArgumentException naming the tensor, its size and the limit
     */
    static void checkLimits(DeviceInfo device, AttentionShape shape, boolean backward, CallTypes types) {
        long b = shape.batch();
        long qElements = b * shape.queryHeads() * shape.queryLen() * shape.headDim();
        long kElements = b * shape.kvHeads() * shape.keyLen() * shape.headDim();
        long vElements = b * shape.kvHeads() * shape.keyLen() * shape.valueDim();
        long outElements = b * shape.queryHeads() * shape.queryLen() * shape.valueDim();
        List<Footprint> buffers = new java.util.ArrayList<>(List.of(
                new Footprint("q", qElements, types.q()),
                new Footprint("k", kElements, types.k()),
                new Footprint("v", vElements, types.v())));
        if (backward) {
            buffers.add(new Footprint("out", outElements, types.out()));
            buffers.add(new Footprint("dOut", outElements, types.dOut()));
            buffers.add(new Footprint("dq", qElements, DType.F32));
            buffers.add(new Footprint("dk", kElements, DType.F32));
            buffers.add(new Footprint("dv", vElements, DType.F32));
        } else {
            buffers.add(new Footprint("out", outElements, DType.F32));
        }
        for (Footprint f : buffers) {
            DeviceLimits.checkStorageBuffer(device, f.name(), f.elements(), f.dtype());
        }
        int hd = TilePlan.bucket(shape.headDim(), shape.valueDim());
        TilePlan fwd = TilePlan.forward(device, hd);
        long tiles = ceilDiv(
                shape.queryLen(),
                backward ? Math.min(fwd.rows(), TilePlan.backward(device, hd).rows()) : fwd.rows());
        if (backward) {
            tiles = Math.max(
                    tiles, ceilDiv(shape.keyLen(), TilePlan.backward(device, hd).keys()));
        }
        DeviceLimits.checkGrid(
                device,
                "q: " + shape.queryLen() + " rows, " + shape.queryHeads() + " heads, batch " + shape.batch(),
                tiles,
                shape.queryHeads(),
                shape.batch());
    }

    /**
     * The system property that forces one forward kernel: {@code blocked}, {@code forward} (the plain tiled
     * kernel), {@code decode} (through shared memory), {@code decode-direct} (the CPU device's), {@code coop} (on
     * cooperative matrices, where the device passed its check) or {@code auto}.
     */
    static final String KERNEL_PROPERTY = "aule.vulkan.kernel";
    /** Fewest keys a decode split walks: below it a split's fixed costs outweigh the parallelism it adds. */
    static final int MIN_KEYS_PER_SPLIT = 256;

    /**
     * The forward kernel a call runs, its tile plan, its split count over the keys (1 but for decode) and why.
     *
     * @param kernel {@link Kernel#FORWARD_BLOCKED} (or its subgroup layout), {@link Kernel#FORWARD} or {@link
     *     Kernel#DECODE}
     * @param plan the kernel's tile plan
     * @param splits key splits of a decode call; 1 otherwise
     * @param reason why this kernel runs the call, for messages and {@code aule info}
     */
    record ForwardChoice(Kernel kernel, TilePlan plan, int splits, String reason) {}

    /**
     * Chooses the forward kernel of a call; every condition of the choice is here (and in {@link #decodeRefusal}
     * and {@link #blockedRefusal}). Every kernel runs every option (causal, windows, softcap, ALiBi, scale, lse)
     * and every storage type, so only the shape decides:
     *
     * <ol>
     *   <li>decode ({@code decode.comp} + {@code merge.comp}; on a CPU device {@code decode_direct.comp}, which
     *       reads keys from memory instead of shared memory) when all of a GQA group's query rows ({@code Sq * Hq
     *       / Hkv}) fit one of its workgroups ({@link TilePlan#DECODE_MAX_ROWS}), the head-dim bucket is at most
     *       {@link TilePlan#DECODE_MAX_HD}, a key block of at least 8 keys fits the device's shared memory, and
     *       its partial results fit a storage buffer;
     *   <li>otherwise, where the device's {@link KernelTable} row says so, the cooperative-matrix forward
     *       ({@code forward_coop.comp}) once its first-use {@link CoopCheck} passed (only through the overload that
     *       knows the input types and that status);
     *   <li>otherwise the blocked forward ({@code forward_blocked.comp}) when a {@link TilePlan#blocked} plan fits
     *       the device's shared memory and its query tiles fit {@code maxComputeWorkGroupCount}, in its subgroup
     *       layout where {@link TilePlan#blockedSubgroupLayout} allows it;
     *   <li>otherwise the plain tiled forward ({@code forward.comp}).
     * </ol>
     *
     * {@code -Daule.vulkan.kernel=blocked|forward|decode|decode-direct|coop} forces one (a call the forced kernel
     * cannot run then fails). The choice depends on Sq, the group, the head dims and Sk, never on the batch, so a sequence runs
     * the same kernel, with the same splits, alone or in a batch.
     *
     * @throws IllegalArgumentException when the property names no kernel, or forces one on a call it cannot run
     */
    static ForwardChoice chooseForward(DeviceInfo device, AttentionShape shape) {
        return chooseForward(device, shape, null, CoopCheck.Result.notChecked(device), forcedKernel());
    }

    /** The forward kernel {@code -Daule.vulkan.kernel} names, lower case; {@code auto} when unset. */
    static String forcedKernel() {
        String forced = System.getProperty(KERNEL_PROPERTY, "auto").strip().toLowerCase(java.util.Locale.ROOT);
        if (!java.util.Set.of("auto", "blocked", "forward", "decode", "decode-direct", "coop")
                .contains(forced)) {
            throw new IllegalArgumentException("-D" + KERNEL_PROPERTY + "=" + forced
                    + ": must be auto, blocked, forward, decode or decode-direct, or coop (the cooperative-matrix"
                    + " kernel)");
        }
        return forced;
    }

    /**
     * As {@link #chooseForward(DeviceInfo, AttentionShape)}, also weighing the cooperative-matrix kernel: after
     * the decode test, the device's {@link KernelTable} row decides, and a coop row runs {@code forward_coop.comp}
     * when {@link KernelTable#coopRefusal} has nothing against it (what the device offers, its first-use check
     * {@code coop}, F16 inputs, head dim 64 or 128); {@code forced} {@code coop} runs it on a call it can run and
     * refuses, with the reason, anywhere else.
     *
     * @param types the inputs' storage types, or null when unknown (the coop kernel is then not chosen)
     */
    static ForwardChoice chooseForward(
            DeviceInfo device, AttentionShape shape, InputTypes types, CoopCheck.Result coop, String forced) {
        String by = forced.equals("auto") ? "" : "forced by -D" + KERNEL_PROPERTY + "=" + forced + ": ";
        int bucket = TilePlan.bucket(shape.headDim(), shape.valueDim());
        if (forced.equals("coop")) {
            String no = types == null ? "input types unknown" : coopRefusal(device, shape, types, coop);
            if (no != null) {
                throw new IllegalArgumentException(
                        "-D" + KERNEL_PROPERTY + "=coop: the cooperative-matrix kernel cannot run this call: " + no);
            }
            return coopChoice(device, bucket, by + "the cooperative-matrix kernel");
        }
        int hd = bucket;
        if (forced.equals("forward")) {
            return new ForwardChoice(Kernel.FORWARD, TilePlan.forward(device, hd), 1, by + "the plain tiled kernel");
        }
        String noDecode = forced.equals("blocked") ? "not asked for" : decodeRefusal(device, shape);
        if (noDecode == null) {
            int rows = shape.queryLen() * (shape.queryHeads() / shape.kvHeads());
            int splits = decodeSplits(device, shape.keyLen());
            // A CPU device reads keys from memory faster than through shared memory (see decode_direct.comp).
            boolean direct = forced.equals("decode-direct") || (forced.equals("auto") && device.isCpu());
            return new ForwardChoice(
                    direct ? Kernel.DECODE_DIRECT : Kernel.DECODE,
                    direct ? TilePlan.decodeDirect(device, hd, rows) : TilePlan.decode(device, hd, rows),
                    splits,
                    by + rows + " query rows per KV head fit one decode workgroup; " + splits + " key split(s)"
                            + (direct ? "; a CPU device: keys read from memory, not shared memory" : ""));
        }
        if (forced.startsWith("decode")) {
            throw new IllegalArgumentException(
                    "-D" + KERNEL_PROPERTY + "=" + forced + ": the decode kernel cannot run this call: " + noDecode);
        }
        KernelTable.Entry row = KernelTable.lookup(device);
        if (forced.equals("auto") && row.kernel() == KernelTable.Choice.COOP && types != null) {
            String noCoop = coopRefusal(device, shape, types, coop);
            if (noCoop == null) {
                return coopChoice(device, bucket, "not decode (" + noDecode + "); " + row.reason());
            }
        }
        String noBlocked = blockedRefusal(device, shape);
        if (noBlocked == null) {
            return new ForwardChoice(
                    TilePlan.blockedSubgroupLayout(device) ? Kernel.FORWARD_BLOCKED_SUBGROUP : Kernel.FORWARD_BLOCKED,
                    TilePlan.blocked(device, hd),
                    1,
                    by + (forced.equals("auto") ? "not decode (" + noDecode + "); " : "") + "register-blocked tiles");
        }
        if (forced.equals("blocked")) {
            throw new IllegalArgumentException(
                    "-D" + KERNEL_PROPERTY + "=blocked: the blocked kernel cannot run this call: " + noBlocked);
        }
        return new ForwardChoice(
                Kernel.FORWARD,
                TilePlan.forward(device, hd),
                1,
                "not decode (" + noDecode + "), not blocked (" + noBlocked + ")");
    }

    /** {@link KernelTable#coopRefusal}, and the coop kernel's query tiles within {@code maxComputeWorkGroupCount}. */
    private static String coopRefusal(
            DeviceInfo device, AttentionShape shape, InputTypes types, CoopCheck.Result coop) {
        int bucket = TilePlan.bucket(shape.headDim(), shape.valueDim());
        String no = KernelTable.coopRefusal(device, bucket, types, coop);
        if (no == null) {
            CoopPlan plan = CoopPlan.of(device, CoopPlan.headDim(bucket), KernelTable.lookup(device));
            if (ceilDiv(shape.queryLen(), plan.rows()) > device.maxWorkgroupCount()[0]) {
                return "Sq / " + plan.rows() + " query tiles over the device's maxComputeWorkGroupCount";
            }
        }
        return no;
    }

    private static ForwardChoice coopChoice(DeviceInfo device, int bucket, String reason) {
        CoopPlan plan = CoopPlan.of(device, CoopPlan.headDim(bucket), KernelTable.lookup(device));
        return new ForwardChoice(Kernel.FORWARD_COOP, plan.tilePlan(), 1, reason + " (" + plan + ")");
    }

    /**
     * 1 when rows of q, k and v can be read four elements at a time (D and Dv multiples of 4, so every four-element
     * group is whole and aligned in its buffer), else 0.
     */
    private static int vec4(AttentionShape shape) {
        return shape.headDim() % 4 == 0 && shape.valueDim() % 4 == 0 ? 1 : 0;
    }

    /** Null when the blocked forward can run {@code shape}; otherwise the condition it fails, in words. */
    static String blockedRefusal(DeviceInfo device, AttentionShape shape) {
        int hd = TilePlan.bucket(shape.headDim(), shape.valueDim());
        TilePlan plan = TilePlan.blocked(device, hd);
        if (plan == null) {
            return "too little shared memory for a blocked tile at head dim " + hd;
        }
        if (ceilDiv(shape.queryLen(), plan.rows()) > device.maxWorkgroupCount()[0]) {
            return "Sq / " + plan.rows() + " query tiles over the device's maxComputeWorkGroupCount";
        }
        return null;
    }

    /** Null when the decode kernel can run {@code shape}; otherwise the first condition it fails, in words. */
    static String decodeRefusal(DeviceInfo device, AttentionShape shape) {
        long rows = (long) shape.queryLen() * (shape.queryHeads() / shape.kvHeads());
        if (rows > TilePlan.DECODE_MAX_ROWS) {
            return "Sq * Hq / Hkv = " + rows + " query rows per KV head, over the decode kernel's "
                    + TilePlan.DECODE_MAX_ROWS;
        }
        int hd = TilePlan.bucket(shape.headDim(), shape.valueDim());
        if (hd > TilePlan.DECODE_MAX_HD) {
            return "head dim " + Math.max(shape.headDim(), shape.valueDim()) + " over the decode kernel's "
                    + TilePlan.DECODE_MAX_HD;
        }
        if (TilePlan.decode(device, hd, (int) rows) == null) {
            return "too little shared memory for a decode key block at head dim " + hd;
        }
        // Partials per row: one per split, or (decode_direct.comp) one per split and thread of a row, at most 32.
        int splits = decodeSplits(device, shape.keyLen()) * 32;
        long partials = (long) shape.batch() * shape.queryHeads() * shape.queryLen() * splits * shape.valueDim();
        if (partials * Float.BYTES > device.maxStorageBufferRange() || partials >= Integer.MAX_VALUE) {
            return "the decode kernel's " + splits + " partial outputs are over the device's maxStorageBufferRange";
        }
        return null;
    }

    /**
     * Key splits of a decode call: one per {@link #MIN_KEYS_PER_SPLIT} keys, at most 4 on a CPU device, 8 on an
     * integrated GPU and 32 on any other (enough workgroups to fill a GPU's compute units with a few KV heads).
     * It depends on Sk and the device only, so a sequence's result is the same alone or in a batch.
     */
    static int decodeSplits(DeviceInfo device, int keyLen) {
        int most = switch (device.kind()) {
            case CPU -> 4;
            case INTEGRATED_GPU -> 8;
            default -> 32;
        };
        return Math.max(1, Math.min(most, ceilDiv(keyLen, MIN_KEYS_PER_SPLIT)));
    }

    /**
     * The forward of a serving call when {@code keys} is not null: the same kernels in their serving variant, each
     * batch entry against its own key count (and block table). {@code shape.keyLen()} is then the caches' capacity
     * (cached) or the longest context (paged), which the kernel choice and the decode splits are taken from. The
     * cooperative-matrix kernel has no serving variant, so a serving call never runs it.
     */
    static void forward(
            VulkanDevice device,
            Scope scope,
            Submission s,
            AttentionShape shape,
            AttentionOptions options,
            InputTypes types,
            DeviceBuffer q,
            DeviceBuffer k,
            DeviceBuffer v,
            DeviceBuffer out,
            DeviceBuffer lse,
            boolean writeLse,
            DeviceBuffer slopes,
            ServingKeys keys) {
        forward(
                device,
                scope,
                s,
                shape,
                options,
                types,
                q,
                k,
                v,
                out,
                lse,
                writeLse,
                slopes,
                keys,
                device.coopStatus(),
                forcedKernel());
    }

    /**
     * As above, with the coop kernel's status and the forced kernel given ({@link CoopCheck} runs the coop kernel
     * before its status is known).
     */
    static void forward(
            VulkanDevice device,
            Scope scope,
            Submission s,
            AttentionShape shape,
            AttentionOptions options,
            InputTypes types,
            DeviceBuffer q,
            DeviceBuffer k,
            DeviceBuffer v,
            DeviceBuffer out,
            DeviceBuffer lse,
            boolean writeLse,
            DeviceBuffer slopes,
            CoopCheck.Result coop,
            String forced) {
        forward(device, scope, s, shape, options, types, q, k, v, out, lse, writeLse, slopes, null, coop, forced);
    }

    private static void forward(
            VulkanDevice device,
            Scope scope,
            Submission s,
            AttentionShape shape,
            AttentionOptions options,
            InputTypes types,
            DeviceBuffer q,
            DeviceBuffer k,
            DeviceBuffer v,
            DeviceBuffer out,
            DeviceBuffer lse,
            boolean writeLse,
            DeviceBuffer slopes,
            ServingKeys keys,
            CoopCheck.Result coop,
            String forced) {
        long rows = (long) shape.batch() * shape.queryHeads() * shape.queryLen();
        if (options.hasSinks() && !writeLse) {
            // The sink pass needs each row's lse: into scratch when the caller wants none.
            lse = scope.add(DeviceBuffer.allocate(device, rows * Float.BYTES));
            writeLse = true;
        }
        // Null types: the coop kernel, which has no serving variant, is not chosen for a serving call.
        ForwardChoice choice = chooseForward(device.info(), shape, keys == null ? types : null, coop, forced);
        if (choice.kernel() == Kernel.FORWARD_COOP) {
            CoopPlan coopPlan = CoopPlan.of(
                    device.info(),
                    CoopPlan.headDim(TilePlan.bucket(shape.headDim(), shape.valueDim())),
                    KernelTable.lookup(device.info()));
            coop(s, device.info(), coopPlan, false, shape, options, types, q, k, v, out, lse, writeLse, slopes);
        } else if (choice.kernel() == Kernel.DECODE || choice.kernel() == Kernel.DECODE_DIRECT) {
            decode(device, scope, s, shape, options, types, choice, q, k, v, out, lse, writeLse, slopes, keys);
        } else {
            tiled(s, device.info(), shape, options, types, choice, q, k, v, out, lse, writeLse, slopes, keys);
        }
        if (options.hasSinks()) {
            sinks(device, scope, s, shape, options, out, lse, rows);
        }
    }

    /** The exp(sink) term of each row's softmax, added after the forward (sinks.comp); {@code lse} is written. */
    static void sinks(
            VulkanDevice device,
            Scope scope,
            Submission s,
            AttentionShape shape,
            AttentionOptions options,
            DeviceBuffer out,
            DeviceBuffer lse,
            long rows) {
        float[] sinks = options.sinks();
        DeviceBuffer buffer = scope.add(DeviceBuffer.allocate(device, (long) sinks.length * Float.BYTES));
        s.write(
                buffer,
                memory -> java.lang.foreign.MemorySegment.copy(
                        sinks, 0, memory, java.lang.foreign.ValueLayout.JAVA_FLOAT, 0, sinks.length));
        TilePlan line = TilePlan.elementwise(device.info());
        int[] grid = grid(device.info(), ceilDiv(rows, line.workgroup()));
        s.dispatch(
                Variant.of(Kernel.SINKS, line, Map.of()),
                new DeviceBuffer[] {out, lse, buffer},
                Params.of(shape, options, true).withCount(Math.toIntExact(rows)),
                grid[0],
                grid[1],
                1);
    }

    /** The tiled forward kernels (blocked or plain) over (query tile, query head, batch). */
    private static void tiled(
            Submission s,
            DeviceInfo device,
            AttentionShape shape,
            AttentionOptions options,
            InputTypes types,
            ForwardChoice choice,
            DeviceBuffer q,
            DeviceBuffer k,
            DeviceBuffer v,
            DeviceBuffer out,
            DeviceBuffer lse,
            boolean writeLse,
            DeviceBuffer slopes,
            ServingKeys keys) {
        TilePlan plan = choice.plan();
        Map<String, Integer> defines = new java.util.HashMap<>(types.defines());
        ServingKeys.define(keys, defines);
        if (choice.kernel() == Kernel.FORWARD_BLOCKED || choice.kernel() == Kernel.FORWARD_BLOCKED_SUBGROUP) {
            defines.put("HDP", plan.hd() + 1);
            defines.put("RM", plan.rowsPerThread());
            defines.put("SUBGROUP_LAYOUT", choice.kernel() == Kernel.FORWARD_BLOCKED_SUBGROUP ? 1 : 0);
            defines.put("VEC4", vec4(shape));
        }
        Variant variant = Variant.of(choice.kernel(), plan, defines);
        dispatchTiles(
                s,
                device,
                variant,
                ServingKeys.bind(keys, q, k, v, out, lse, slopes),
                ServingKeys.params(keys, Params.of(shape, options, writeLse)),
                ceilDiv(shape.queryLen(), plan.rows()),
                (long) plan.rows() * shape.keyLen() * shape.queryHeads() * shape.batch(),
                shape.queryHeads(),
                shape.batch());
    }

    /**
     * forward_coop.comp over (query tile, query head, batch) with {@code plan}; {@code emulated} compiles its
     * matrix operations as plain-array macros (COOP_EMULATED), which any device runs (tests).
     */
    static void coop(
            Submission s,
            DeviceInfo device,
            CoopPlan plan,
            boolean emulated,
            AttentionShape shape,
            AttentionOptions options,
            InputTypes types,
            DeviceBuffer q,
            DeviceBuffer k,
            DeviceBuffer v,
            DeviceBuffer out,
            DeviceBuffer lse,
            boolean writeLse,
            DeviceBuffer slopes) {
        Map<String, Integer> defines = plan.defines(types.defines());
        defines.put("COOP_EMULATED", emulated ? 1 : 0);
        dispatchTiles(
                s,
                device,
                new Variant(Kernel.FORWARD_COOP, defines),
                new DeviceBuffer[] {q, k, v, out, lse, slopes},
                Params.of(shape, options, writeLse),
                ceilDiv(shape.queryLen(), plan.rows()),
                (long) plan.rows() * shape.keyLen() * shape.queryHeads() * shape.batch(),
                shape.queryHeads(),
                shape.batch());
    }

    /**
     * Dispatches a grid of {@code tiles} x {@code gy} x {@code gz} workgroups in parts of at most {@link
     * #tilesPerSubmit} tiles, each part after the first in a submission of its own, with the push constant {@code
     * tileBase} at its first tile. Each tile is one workgroup that alone writes its outputs, whatever the grid, so a
     * split grid computes the same bits as a whole one.
     */
    static void dispatchTiles(
            Submission s,
            DeviceInfo device,
            Variant variant,
            DeviceBuffer[] buffers,
            Params params,
            int tiles,
            long scoresPerTile,
            int gy,
            int gz) {
        int part = tilesPerSubmit(device, scoresPerTile);
        for (long base = 0; base < tiles; base += part) {
            if (base > 0) {
                s.flush();
            }
            s.dispatch(variant, buffers, params.withTileBase((int) base), (int) Math.min(part, tiles - base), gy, gz);
        }
    }

    /**
     * The system property bounding the tiles (query tiles of the forward and dQ kernels, key blocks of the dK/dV
     * kernel) of one submission ({@code aule.vulkan.maxTilesPerSubmit}, a positive count): a longer grid is split
     * over several submissions, so that no single one runs long enough for a display watchdog to reset the GPU.
     */
    static final String MAX_TILES_PROPERTY = "aule.vulkan.maxTilesPerSubmit";

    /**
     * Scores (query rows x keys x heads x batch) one submission of a GPU computes at most by default: 2^32, about
     * 2 TFLOP at head dim 128, a fraction of a second on a GPU, well under Windows' 2 s watchdog.
     */
    static final long SCORES_PER_SUBMIT = 1L << 32;

    /**
     * Query tiles of {@code rows} rows one forward submission runs: {@code -Daule.vulkan.maxTilesPerSubmit} when
     * set; else as many as {@link #SCORES_PER_SUBMIT} allows (at least 1) on a GPU, and all of them on a CPU device,
     * which has no display watchdog.
     *
     * @throws IllegalArgumentException when the property is not a positive integer
     */
    static int tilesPerSubmit(DeviceInfo device, AttentionShape shape, int rows) {
        return tilesPerSubmit(device, (long) rows * shape.keyLen() * shape.queryHeads() * shape.batch());
    }

    /** Tiles of {@code scoresPerTile} scores each that one submission runs, as the overload above. */
    static int tilesPerSubmit(DeviceInfo device, long scoresPerTile) {
        String forced = System.getProperty(MAX_TILES_PROPERTY);
        if (forced != null && !forced.isBlank()) {
            try {
                int n = Integer.parseInt(forced.strip());
                if (n > 0) {
                    return n;
                }
            } catch (NumberFormatException e) {
                // refused below
            }
            throw new IllegalArgumentException(
                    "-D" + MAX_TILES_PROPERTY + "=" + forced + ": must be a positive number of tiles");
        }
        if (device.isCpu()) {
            return Integer.MAX_VALUE;
        }
        return (int) Math.max(1, Math.min(Integer.MAX_VALUE, SCORES_PER_SUBMIT / Math.max(1, scoresPerTile)));
    }

    /**
     * decode.comp over (split, KV head, batch), writing per-split partials, then merge.comp; with one split the
     * partials are the result, written straight into {@code out} and {@code lse}.
     */
    private static void decode(
            VulkanDevice device,
            Scope scope,
            Submission s,
            AttentionShape shape,
            AttentionOptions options,
            InputTypes types,
            ForwardChoice choice,
            DeviceBuffer q,
            DeviceBuffer k,
            DeviceBuffer v,
            DeviceBuffer out,
            DeviceBuffer lse,
            boolean writeLse,
            DeviceBuffer slopes,
            ServingKeys keys) {
        Map<String, Integer> defines = new java.util.HashMap<>(types.defines());
        ServingKeys.define(keys, defines);
        defines.put("HDP", choice.plan().hd() + 1);
        defines.put("VEC4", vec4(shape));
        Variant variant = Variant.of(choice.kernel(), choice.plan(), defines);
        int splits = choice.splits();
        // decode_direct.comp: each thread of a row writes its own partial, splits * threadsPerRow of them a row
        int partsPerRow =
                choice.kernel() == Kernel.DECODE_DIRECT ? splits * choice.plan().threadsPerRow() : splits;
        Params params = ServingKeys.params(
                keys, Params.of(shape, options, writeLse || partsPerRow > 1).withCount(splits));
        if (partsPerRow == 1) {
            s.dispatch(
                    variant,
                    ServingKeys.bind(keys, q, k, v, out, lse, slopes),
                    params,
                    1,
                    shape.kvHeads(),
                    shape.batch());
            return;
        }
        long rows = (long) shape.batch() * shape.queryHeads() * shape.queryLen();
        DeviceBuffer oPart =
                scope.add(DeviceBuffer.allocate(device, rows * partsPerRow * shape.valueDim() * Float.BYTES));
        DeviceBuffer lsePart = scope.add(DeviceBuffer.allocate(device, rows * partsPerRow * Float.BYTES));
        s.dispatch(
                variant,
                ServingKeys.bind(keys, q, k, v, oPart, lsePart, slopes),
                params,
                splits,
                shape.kvHeads(),
                shape.batch());
        TilePlan line = TilePlan.elementwise(device.info());
        int[] grid = grid(device.info(), ceilDiv(rows * shape.valueDim(), line.workgroup()));
        s.dispatch(
                Variant.of(Kernel.DECODE_MERGE, line, Map.of()),
                new DeviceBuffer[] {oPart, lsePart, out, lse},
                Params.of(shape, options, writeLse).withCount(partsPerRow),
                grid[0],
                grid[1],
                1);
    }

    /**
     * delta = rowsum(dOut * out), then dK and dV per key block, then dQ per query tile; with {@code masks} (the
     * device buffers of {@link MaskedBackward#upload}, or null) the masked variants of the two kernels.
     */
    static void backward(
            VulkanDevice device,
            Submission s,
            AttentionShape shape,
            AttentionOptions options,
            InputTypes types,
            DType outType,
            DType dOutType,
            DeviceBuffer q,
            DeviceBuffer k,
            DeviceBuffer v,
            DeviceBuffer out,
            DeviceBuffer dOut,
            DeviceBuffer lse,
            DeviceBuffer delta,
            DeviceBuffer slopes,
            DeviceBuffer dq,
            DeviceBuffer dk,
            DeviceBuffer dv,
            DeviceBuffer[] masks) {
        Params params = Params.of(shape, options, false);
        int rows = shape.batch() * shape.queryHeads() * shape.queryLen();
        TilePlan line = TilePlan.elementwise(device.info());
        Variant deltaVariant = Variant.of(
                Kernel.DELTA, line, Map.of("O_TYPE", Variant.typeCode(outType), "DO_TYPE", Variant.typeCode(dOutType)));
        int[] grid = grid(device.info(), ceilDiv(rows, line.workgroup()));
        s.dispatch(deltaVariant, new DeviceBuffer[] {out, dOut, delta}, params.withCount(rows), grid[0], grid[1], 1);

        TilePlan plan = TilePlan.backward(device.info(), TilePlan.bucket(shape.headDim(), shape.valueDim()));
        Map<String, Integer> defines = new java.util.HashMap<>(types.defines());
        defines.put("DO_TYPE", Variant.typeCode(dOutType));
        if (masks != null) {
            defines.put("MASKS", 1);
        }
        // A key block's workgroup walks the rows of every query head of its group: Sq x Hq / Hkv rows.
        dispatchTiles(
                s,
                device.info(),
                Variant.of(masks == null ? Kernel.BACKWARD_KV : Kernel.BACKWARD_KV_MASKED, plan, defines),
                MaskedBackward.bind(new DeviceBuffer[] {q, k, v, dOut, lse, delta, slopes, dk, dv}, masks),
                params,
                ceilDiv(shape.keyLen(), plan.keys()),
                (long) plan.keys() * shape.queryLen() * shape.queryHeads() * shape.batch(),
                shape.kvHeads(),
                shape.batch());
        dispatchTiles(
                s,
                device.info(),
                Variant.of(masks == null ? Kernel.BACKWARD_Q : Kernel.BACKWARD_Q_MASKED, plan, defines),
                MaskedBackward.bind(new DeviceBuffer[] {q, k, v, dOut, lse, delta, slopes, dq}, masks),
                params,
                ceilDiv(shape.queryLen(), plan.rows()),
                (long) plan.rows() * shape.keyLen() * shape.queryHeads() * shape.batch(),
                shape.queryHeads(),
                shape.batch());
    }

    /** Rounds {@code count} F32 values of {@code from} into the packed 16-bit {@code to}. */
    static void pack16(
            VulkanDevice device,
            Submission s,
            AttentionShape shape,
            DeviceBuffer from,
            DeviceBuffer to,
            DType type,
            long count) {
        TilePlan line = TilePlan.elementwise(device.info());
        Variant variant = Variant.of(Kernel.PACK16, line, Map.of("OUT_TYPE", Variant.typeCode(type)));
        int[] grid = grid(device.info(), ceilDiv(ceilDiv(count, 2), line.workgroup()));
        s.dispatch(
                variant,
                new DeviceBuffer[] {from, to},
                Params.of(shape, AttentionOptions.defaults(), false).withCount(Math.toIntExact(count)),
                grid[0],
                grid[1],
                1);
    }

    /** A 2-D grid of {@code groups} workgroups within the device's per-dimension limit. */
    private static int[] grid(DeviceInfo device, long groups) {
        long x = Math.max(1, Math.min(groups, device.maxWorkgroupCount()[0]));
        return new int[] {(int) x, Math.toIntExact(ceilDiv(groups, x))};
    }

    static int ceilDiv(long a, long b) {
        return Math.toIntExact((a + b - 1) / b);
    }
}
