package dev.aule.serving;

/** Selection of the k largest keys of an array, in linear expected time (introselect on a copy of indices). */
final class TopK {
    private TopK() {}

    /**
     * Reorders {@code ids[0, n)} so that its first {@code k} entries are those with the largest
     * {@code keys[keyOffset + id]}
     * (ties broken by the smaller id, so the choice is deterministic); their order among themselves is unspecified.
     * {@code 0 <= k <= n}.
     */
    static void largestToFront(int[] ids, int n, int k, float[] keys, int keyOffset) {
        if (k <= 0 || k >= n) {
            return;
        }
        int lo = 0;
        int hi = n - 1;
        long seed = 0x9E3779B97F4A7C15L;
        while (lo < hi) {
            seed = seed * 6364136223846793005L + 1442695040888963407L;
            int pivot = ids[lo + (int) ((seed >>> 33) % (hi - lo + 1))];
            // Three-way partition: [lo, lt) before the pivot, [lt, gt] equal, (gt, hi] after.
            int lt = lo;
            int gt = hi;
            int i = lo;
            while (i <= gt) {
                int c = compare(ids[i], pivot, keys, keyOffset);
                if (c < 0) {
                    swap(ids, lt++, i++);
                } else if (c > 0) {
                    swap(ids, i, gt--);
                } else {
                    i++;
                }
            }
            if (k <= lt) {
                hi = lt - 1;
            } else if (k > gt + 1) {
                lo = gt + 1;
            } else {
                return;
            }
        }
    }

    /** Negative when {@code a} ranks before {@code b}: larger key first, then smaller id. */
    private static int compare(int a, int b, float[] keys, int keyOffset) {
        int c = Float.compare(keys[keyOffset + b], keys[keyOffset + a]);
        return c != 0 ? c : Integer.compare(a, b);
    }

    private static void swap(int[] a, int i, int j) {
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}
