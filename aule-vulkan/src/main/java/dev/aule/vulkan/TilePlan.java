package dev.aule.vulkan;

import java.util.Arrays;

/**
 * Tile sizes of one kernel for one head-dim bucket, derived from the device's limits.
 *
 * <p>Every kernel keeps its query tile and key block in shared memory as F32 rows of {@code hd}
 * floats, so the shared-memory size decides how many rows fit: the plan takes the largest tile that
 * fits. A workgroup is 128 threads (or one subgroup if that is larger), {@code threadsPerRow} of them
 * sharing each row, so a thread holds {@code hd / threadsPerRow} accumulators in registers.
 *
 * @param hd head-dim bucket: 32, 64, 128 or 256, at least the call's D and Dv
 * @param rows query rows per tile ({@code BR})
 * @param keys keys per block ({@code BC})
 * @param threadsPerRow threads sharing one row ({@code TPR})
 * @param workgroup threads per workgroup ({@code WG})
 */
record TilePlan(int hd, int rows, int keys, int threadsPerRow, int workgroup) {
    static final int[] BUCKETS = {32, 64, 128, 256};
    private static final int[] ROW_CHOICES = {64, 32, 16, 8, 4};
    private static final int MAX_KEYS = 64;

    /** The smallest bucket holding head dims {@code d} and {@code dv}. */
    static int bucket(int d, int dv) {
        int need = Math.max(d, dv);
        for (int b : BUCKETS) {
            if (need <= b) {
                return b;
            }
        }
        throw new IllegalArgumentException("head dim " + need + " is over the vulkan backend's limit of 256");
    }

    /** Forward: the largest query tile whose key block holds at least half as many keys (or the smallest tile). */
    static TilePlan forward(DeviceInfo device, int hd) {
        long budget = sharedFloats(device);
        int wg = workgroup(device);
        for (int rows : rowChoices(wg, hd)) {
            // sharedFloats(FORWARD) = rows * hd + keys * (2 hd + 2 rows) <= budget, solved for keys
            long keys = (budget - (long) rows * hd) / (2L * hd + 2L * rows);
            keys = Math.min(MAX_KEYS, keys - keys % 4);
            if (keys >= 4 && (keys >= rows / 2 || rows == 4)) {
                return new TilePlan(hd, rows, (int) keys, wg / rows, wg);
            }
        }
        throw tooLittleSharedMemory(device, "head dim " + hd);
    }

    /** Backward: square tiles (BR = BC), the largest whose two kernels both fit. */
    static TilePlan backward(DeviceInfo device, int hd) {
        long budget = sharedFloats(device);
        int wg = workgroup(device);
        for (int b : rowChoices(wg, hd)) {
            TilePlan plan = new TilePlan(hd, b, b, wg / b, wg);
            if (Math.max(plan.sharedFloats(Kernel.BACKWARD_KV), plan.sharedFloats(Kernel.BACKWARD_Q)) <= budget) {
                return plan;
            }
        }
        throw tooLittleSharedMemory(device, "the backward pass at head dim " + hd);
    }

    /**
     * Floats of shared memory that {@code kernel}'s {@code shared float} arrays take with this plan. It mirrors
     * the declarations in the shaders (ShaderConstantsTest checks that it does): every tile row is {@code hd}
     * floats, whatever the call's D and Dv.
     */
    long sharedFloats(Kernel kernel) {
        long queryTile = (long) rows * hd;
        long keyBlock = (long) keys * hd;
        long scores = (long) rows * keys;
        // forward: sQ; sK, sV; sS, sP. dK/dV: sQ, sDO; sK, sV; sP, sDS; sLse, sDelta. dQ: the same without sP.
        return switch (kernel) {
            case FORWARD, FORWARD_MASKED -> queryTile + 2 * keyBlock + 2 * scores;
            case BACKWARD_KV, BACKWARD_KV_MASKED -> 2 * queryTile + 2 * keyBlock + 2 * scores + 2L * rows;
            case BACKWARD_Q, BACKWARD_Q_MASKED -> 2 * queryTile + 2 * keyBlock + scores + 2L * rows;
            // blocked forward: sQ, sK (rows padded to hd + 1), sV; sP; sMax, sSum
            case FORWARD_BLOCKED, FORWARD_BLOCKED_MASKED ->
                queryTile + rows + keyBlock + keys + keyBlock + scores + 2L * rows * threadsPerRow;
            // the subgroup layout: sK (padded), sV; sP (q is read from memory, the reductions are subgroup ops)
            case FORWARD_BLOCKED_SUBGROUP, FORWARD_BLOCKED_SUBGROUP_MASKED -> keyBlock + keys + keyBlock + scores;
            // decode: sQ; sK (rows padded to hd + 1), sV; sP; sMax, sSum
            case DECODE -> queryTile + keyBlock + keys + keyBlock + scores + 2L * workgroup;
            case DELTA, PACK16, DECODE_MERGE, DECODE_DIRECT, SINKS -> 0;
            // F16 and F32 arrays sized by its own plan: CoopPlan.sharedBytes
            case FORWARD_COOP -> 0;
        };
    }

    /**
     * The blocked forward ({@code forward_blocked.comp}): the query tile and key block (each 8 to 64) with the
     * most scores (on a CPU device: the most rows, then keys) that fit the device's shared memory, split over the workgroup so each thread owns {@link
     * #rowsPerThread} (1, 2 or 4; up to 8 in the subgroup layout) consecutive rows and {@code keys / threadsPerRow} keys of them, at most 32
     * threads per row group; among tiles of the same area, the register block with the fewest shared reads
     * per multiply-add. Null when none fits.
     */
    static TilePlan blocked(DeviceInfo device, int hd) {
        long budget = sharedFloats(device);
        int wg = workgroup(device);
        int subgroup = blockedSubgroupLayout(device) ? device.subgroupSize() : 0;
        Kernel kernel = subgroup != 0 ? Kernel.FORWARD_BLOCKED_SUBGROUP : Kernel.FORWARD_BLOCKED;
        TilePlan best = null;
        double bestReads = Double.MAX_VALUE;
        // The subgroup layout keeps no query tile in shared memory, so its tiles may be taller.
        int[] rowChoices = subgroup != 0 ? new int[] {128, 64, 32, 16, 8} : new int[] {64, 32, 16, 8};
        int[] rmChoices = subgroup != 0 ? new int[] {8, 4, 2, 1} : new int[] {4, 2, 1};
        for (int rows : rowChoices) {
            for (int keys : new int[] {64, 32, 16, 8}) {
                for (int rm : rmChoices) {
                    int groups = rows / rm; // thread rows
                    if (rows % rm != 0 || wg % groups != 0) {
                        continue;
                    }
                    int tpr = wg / groups;
                    if (tpr > 32 || keys % tpr != 0 || hd % tpr != 0 || (subgroup != 0 && tpr != subgroup)) {
                        continue;
                    }
                    TilePlan plan = new TilePlan(hd, rows, keys, tpr, wg);
                    if (plan.sharedFloats(kernel) > budget) {
                        continue;
                    }
                    int rn = keys / tpr;
                    int cn = hd / tpr;
                    // shared reads per multiply-add of Q K^T and of P V
                    double reads = (rm + rn) / (double) (rm * rn) + (rm + cn) / (double) (rm * cn);
                    // On a CPU device each element moved into shared memory costs a loop over the lanes, so the
                    // query tile (which every moved key and value row serves) counts first.
                    long area = subgroup != 0 ? (long) rows << 16 | keys : (long) rows * keys;
                    long bestArea = best == null
                            ? 0
                            : subgroup != 0 ? (long) best.rows << 16 | best.keys : (long) best.rows * best.keys;
                    if (area > bestArea || (area == bestArea && reads < bestReads)) {
                        best = plan;
                        bestReads = reads;
                    }
                }
            }
        }
        return best;
    }

    /**
     * Whether the blocked forward runs with one subgroup per row group (its {@code SUBGROUP_LAYOUT}): on CPU
     * devices (lavapipe), whose subgroup size is fixed (the native vector width) and where the layout turns
     * gathers from shared memory into broadcasts, when the subgroup is 4 to 16 lanes. (lavapipe at 1024-bit vectors
     * reports 32-lane subgroups but runs a 128-invocation workgroup as 8 subgroups, not 4; the kernel's check
     * of gl_NumSubgroups catches that, and such devices run the shared-memory reductions instead.)
     * GPUs may pick a subgroup size per pipeline, which the layout cannot allow (without
     * {@code VK_EXT_subgroup_size_control}), so they run the shared-memory reductions.
     */
    static boolean blockedSubgroupLayout(DeviceInfo device) {
        int sg = device.subgroupSize();
        return device.isCpu() && sg >= 4 && sg <= 16 && Integer.bitCount(sg) == 1 && workgroup(device) % sg == 0;
    }

    /** Rows each thread of a {@link #blocked} plan owns. */
    int rowsPerThread() {
        return rows * threadsPerRow / workgroup;
    }

    /** The most rows (query heads of a GQA group times queries) one decode workgroup holds. */
    static final int DECODE_MAX_ROWS = 32;
    /** The largest head-dim bucket the decode kernel runs: above it too few keys of a block fit 32 KiB. */
    static final int DECODE_MAX_HD = 128;

    /**
     * Decode ({@code decode.comp}): {@code rows} (at most {@link #DECODE_MAX_ROWS}) rounded up to a power of two,
     * at most 32 threads a row (so a row's reductions read at most 32 partials, and every thread owns whole
     * columns: 32 <= hd) and at most 128 threads in all, and the longest key block (a multiple of 8, at most 64)
     * that fits the device's shared memory; null when not even 8 keys fit.
     */
    static TilePlan decode(DeviceInfo device, int hd, int rows) {
        if (rows < 1 || rows > DECODE_MAX_ROWS || hd > DECODE_MAX_HD) {
            return null;
        }
        int br = Integer.highestOneBit(rows) == rows ? rows : Integer.highestOneBit(rows) * 2;
        int tpr = Math.min(32, 128 / br);
        int wg = br * tpr;
        if (wg > Math.min(device.maxWorkgroupInvocations(), device.maxWorkgroupSizeX())) {
            return null;
        }
        // sharedFloats(DECODE) = br * hd + keys * (2 hd + 1 + br) + 2 wg <= budget, solved for keys
        long keys = (sharedFloats(device) - (long) br * hd - 2L * wg) / (2L * hd + 1 + br);
        keys = Math.min(MAX_KEYS, keys - keys % 8);
        return keys >= 8 ? new TilePlan(hd, br, (int) keys, tpr, wg) : null;
    }

    /**
     * Decode on a CPU device ({@code decode_direct.comp}): {@code rows} rounded up to a power of two, 32 threads
     * per row for one row down to 4 from 8 rows on (at most 128 threads), each walking its own keys; {@code keys}
     * is unused (1). Null where {@link #decode} would refuse the shape.
     */
    static TilePlan decodeDirect(DeviceInfo device, int hd, int rows) {
        if (rows < 1 || rows > DECODE_MAX_ROWS || hd > DECODE_MAX_HD) {
            return null;
        }
        int br = Integer.highestOneBit(rows) == rows ? rows : Integer.highestOneBit(rows) * 2;
        int tpr = Math.max(4, 32 / br);
        int wg = br * tpr;
        return wg <= Math.min(device.maxWorkgroupInvocations(), device.maxWorkgroupSizeX())
                ? new TilePlan(hd, br, 1, tpr, wg)
                : null;
    }

    /** Plain 1-D kernels (delta, conversion): one workgroup of the usual size. */
    static TilePlan elementwise(DeviceInfo device) {
        int wg = workgroup(device);
        return new TilePlan(TilePlan.BUCKETS[0], 1, 1, 1, wg);
    }

    /** Row counts of a tile that split a workgroup of {@code wg} threads evenly, at most {@code hd} threads a row. */
    private static int[] rowChoices(int wg, int hd) {
        return Arrays.stream(ROW_CHOICES)
                .filter(rows -> wg % rows == 0 && wg / rows <= hd)
                .toArray();
    }

    private static VulkanException tooLittleSharedMemory(DeviceInfo device, String what) {
        return new VulkanException(
                "device has " + device.sharedMemoryBytes() + " bytes of shared memory, too little" + " for " + what);
    }

    /** Floats of shared memory a kernel may use on {@code device}. */
    static long sharedFloats(DeviceInfo device) {
        return device.sharedMemoryBytes() / Float.BYTES - 64; // a little room for the compiler's own use
    }

    /** 128 threads, or one subgroup when that is wider; never over the device's limits. */
    private static int workgroup(DeviceInfo device) {
        int wg = Math.max(128, device.subgroupSize());
        return Math.min(wg, Math.min(device.maxWorkgroupInvocations(), device.maxWorkgroupSizeX()));
    }
}
