package dev.aule.vulkan;

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

    /** Forward: sQ[BR][hd], sK and sV[BC][hd], scores and probabilities [BR][BC]. */
    static TilePlan forward(DeviceInfo device, int hd) {
        long budget = sharedFloats(device);
        int wg = workgroup(device);
        for (int rows : ROW_CHOICES) {
            if (wg % rows != 0 || wg / rows > hd) {
                continue;
            }
            long keys = (budget - (long) rows * hd) / (2L * hd + 2L * rows);
            keys = Math.min(MAX_KEYS, keys - keys % 4);
            if (keys >= 4 && (keys >= rows / 2 || rows == 4)) {
                return new TilePlan(hd, rows, (int) keys, wg / rows, wg);
            }
        }
        throw new VulkanException("device has " + device.sharedMemoryBytes() + " bytes of shared memory, too little"
                + " for head dim " + hd);
    }

    /**
     * Backward (square tiles, BR = BC): the dK/dV kernel, the larger of the two, holds K, V, Q and dOut
     * tiles of hd floats a row, P and dS [BR][BC], and LSE and delta per row.
     */
    static TilePlan backward(DeviceInfo device, int hd) {
        long budget = sharedFloats(device);
        int wg = workgroup(device);
        for (int b : ROW_CHOICES) {
            if (wg % b != 0 || wg / b > hd) {
                continue;
            }
            long need = 4L * b * hd + 2L * b * b + 2L * b;
            if (need <= budget) {
                return new TilePlan(hd, b, b, wg / b, wg);
            }
        }
        throw new VulkanException("device has " + device.sharedMemoryBytes() + " bytes of shared memory, too little"
                + " for the backward pass at head dim " + hd);
    }

    /** Plain 1-D kernels (delta, conversion): one workgroup of the usual size. */
    static TilePlan elementwise(DeviceInfo device) {
        int wg = workgroup(device);
        return new TilePlan(TilePlan.BUCKETS[0], 1, 1, 1, wg);
    }

    private static long sharedFloats(DeviceInfo device) {
        return device.sharedMemoryBytes() / Float.BYTES - 64; // a little room for the compiler's own use
    }

    /** 128 threads, or one subgroup when that is wider; never over the device's limits. */
    private static int workgroup(DeviceInfo device) {
        int wg = Math.max(128, device.subgroupSize());
        return Math.min(wg, Math.min(device.maxWorkgroupInvocations(), device.maxWorkgroupSizeX()));
    }
}
