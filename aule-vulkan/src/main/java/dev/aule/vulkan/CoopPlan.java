package dev.aule.vulkan;

import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Tile sizes of {@code forward_coop.comp} on one device for one head dim: the matrix shape, the subgroup size the
 * pipeline runs at, subgroups per workgroup and keys per block. Its {@link #sharedBytes} mirrors the shader's
 * shared arrays (CoopShaderTest checks that it does).
 *
 * @param hd the compile-time head dim, 64 or 128
 * @param shape the cooperative-matrix shape (F16 x F16 + F32) both products use
 * @param subgroup the subgroup size ({@code SG}), required of the pipeline when {@code requireSubgroup}
 * @param subgroups subgroups per workgroup ({@code NSG}); each owns {@code shape.m()} query rows
 * @param keys keys per block ({@code BC})
 * @param requireSubgroup whether the pipeline sets {@code requiredSubgroupSize} (subgroup size control)
 */
record CoopPlan(int hd, CoopSupport.Shape shape, int subgroup, int subgroups, int keys, boolean requireSubgroup) {
    /** The head dims the kernel is compiled for. */
    static final int[] HEAD_DIMS = {64, 128};

    /** Query rows per workgroup. */
    int rows() {
        return subgroups * shape.m();
    }

    int workgroup() {
        return subgroup * subgroups;
    }

    /**
     * Shared memory of the shader's arrays: sK, sV (F16, rows of HD + 8), sP (F16, BR x (BC + 8)), sS (F32, BR x
     * (BC + 4)), sO (F32, BR x (HD + 4)), five F32 per row and one int.
     */
    long sharedBytes() {
        long br = rows();
        return 2L * keys * (hd + 8) * 2
                + br * (keys + 8) * 2
                + br * (keys + 4) * 4
                + br * (hd + 4) * 4
                + 5 * br * 4
                + 4;
    }

    /** The #defines of its variant (with the input types). */
    Map<String, Integer> defines(Map<String, Integer> types) {
        Map<String, Integer> d = new TreeMap<>(types);
        d.put("HD", hd);
        d.put("CM", shape.m());
        d.put("CN", shape.n());
        d.put("CK", shape.k());
        d.put("SG", subgroup);
        d.put("NSG", subgroups);
        d.put("BC", keys);
        d.put(Pipelines.REQUIRED_SUBGROUP_SIZE, requireSubgroup ? subgroup : 0);
        d.put("COOP_EMULATED", 0);
        return d;
    }

    /** As a {@link TilePlan} (rows, keys, workgroup), for code that reads a forward choice's tiles. */
    TilePlan tilePlan() {
        return new TilePlan(hd, rows(), keys, 1, workgroup());
    }

    /** The kernel's head dim for a call's bucket: 64 (buckets 32 and 64), 128, or 0 when it has none. */
    static int headDim(int bucket) {
        return bucket <= 64 ? 64 : bucket == 128 ? 128 : 0;
    }

    /**
     * The plan for {@code device} at head dim {@code hd} following the table's row, or null when none fits: the
     * first shape of the row's preferences the device lists (else the first usable listed shape) whose N and K
     * divide HD and whose M is at most the subgroup; the row's subgroup size when the device can require it (else
     * the device's own); then the most subgroups (4, 2, 1) and keys (64, 32, 16) that fit shared memory and the
     * workgroup limit, with BC a multiple of N and K and at least BR (the query tile passes through sK).
     */
    static CoopPlan of(DeviceInfo device, int hd, KernelTable.Entry entry) {
        CoopSupport coop = device.coop();
        int subgroup = device.subgroupSize();
        boolean require = false;
        if (entry.subgroup() > 0
                && coop.subgroupSizeControl()
                && entry.subgroup() >= coop.minSubgroupSize()
                && entry.subgroup() <= coop.maxSubgroupSize()) {
            subgroup = entry.subgroup();
            require = true;
        }
        CoopSupport.Shape shape = shape(coop.usable(), entry.shapes(), hd, subgroup);
        if (shape == null) {
            return null;
        }
        for (int nsg : new int[] {4, 2, 1}) {
            for (int bc : new int[] {64, 32, 16}) {
                CoopPlan plan = new CoopPlan(hd, shape, subgroup, nsg, bc, require);
                if (bc % shape.n() == 0
                        && bc % shape.k() == 0
                        && bc >= plan.rows()
                        && plan.workgroup() <= Math.min(device.maxWorkgroupInvocations(), device.maxWorkgroupSizeX())
                        && plan.sharedBytes() <= device.sharedMemoryBytes()) {
                    return plan;
                }
            }
        }
        return null;
    }

    private static CoopSupport.Shape shape(
            List<CoopSupport.Shape> usable, List<int[]> preferred, int hd, int subgroup) {
        for (int[] mnk : preferred) {
            for (CoopSupport.Shape s : usable) {
                if (s.m() == mnk[0] && s.n() == mnk[1] && s.k() == mnk[2] && fits(s, hd, subgroup)) {
                    return s;
                }
            }
        }
        for (CoopSupport.Shape s : usable) {
            if (fits(s, hd, subgroup)) {
                return s;
            }
        }
        return null;
    }

    private static boolean fits(CoopSupport.Shape s, int hd, int subgroup) {
        return hd % s.n() == 0 && hd % s.k() == 0 && s.m() <= subgroup && 64 % s.n() == 0 && 64 % s.k() == 0;
    }
}
