package dev.aule.cpu;

import java.util.Arrays;
import java.util.concurrent.ConcurrentLinkedQueue;

/**
 * One worker's tile buffers, reused across tiles and calls so the hot path allocates nothing.
 * Taken from and returned to a small shared pool, which works the same for platform and
 * virtual threads (unlike a ThreadLocal, it never keeps a copy per caller thread).
 */
final class Scratch {
    private static final ConcurrentLinkedQueue<Scratch> POOL = new ConcurrentLinkedQueue<>();

    float[] q = new float[0]; // [tileRows][d], pre-scaled queries
    private float[] rebiasBuffer = new float[0]; // q in the form a short tile's quantized key scores read as well
    float[] qRebiased; // rebiasBuffer where it holds the current tile's queries (TileMath.rebiasQueries), else null
    float[] kt = new float[0]; // [d][keyTile], the key block transposed
    float[] v = new float[0]; // [keyTile][dvp]
    private float[] wideV = new float[0]; // a wide key block's values, packed [keys][dvp] (FlashForward.wideBlock)
    private float[] wideS = new float[0]; // a wide key block's scores for one group of rows (WideBlocks)
    float[] s = new float[0]; // [tileRows][keyTile], scores then probabilities
    float[] o = new float[0]; // [tileRows][dvp], the unnormalised output
    int dvp; // the padded value dim of the current geometry: o's and a value row's length
    float[] row = new float[0]; // one key or output row
    float[] qCols = new float[0]; // [d][cols], a short tile's queries transposed (TileMath.scoresByKey)
    float[] sCols = new float[0]; // [keyTile][cols], its scores keys by rows
    float[] m = new float[0]; // running row max
    float[] l = new float[0]; // running row sum
    float[] alpha = new float[0]; // rescale factor of the current block
    boolean overflow; // a raw score of the tile's fast sweep was not finite where a softcap would hide it
    float[] ones = new float[0]; // alphas of 1: a block's later runs of in-place values (no rescale)
    int[] qRow = new int[0]; // query index of each tile row
    int[] runOffsets = new int[0]; // a short tile's runs of quantized keys (TileMath.quantizedScores): first codes
    int[] runKeys = new int[0]; // their key counts
    float[] runScales = new float[0]; // their blocks' scales
    int[] qHead = new int[0]; // query head of each tile row
    int[] first = new int[0]; // first visible key of each tile row
    int[] last = new int[0]; // last visible key of each tile row
    float[] slope = new float[0]; // ALiBi slope of each tile row
    int[] dropLo = new int[0]; // low half of each tile row's dropout key (Dropout.rowKey)
    int[] dropHi = new int[0]; // its high half
    boolean[] fuse = new boolean[0]; // rows whose softmax update the score kernel did (TileMath.multiplySoftmax)

    // Backward (FlashBackward): one key block of T = keyTile keys and the T x T transposed tiles.
    float[] kRows = new float[0]; // [T][d], the key block
    float[] kCols = new float[0]; // [dPad][T], the key block transposed, rows past d zero
    float[] vRows = new float[0]; // [T][dv], the value block
    float[] sT = new float[0]; // [T][T], scores then probabilities, keys by query rows
    float[] dpT = new float[0]; // [T][T], dOut . v then the score gradients
    float[] dkAcc = new float[0]; // [T][dPad], the block's key gradients
    float[] dvAcc = new float[0]; // [T][dvPad], the block's value gradients
    float[] row2 = new float[0]; // a second row: out beside dOut
    float[] dropT = new float[0]; // [T][T], the dropout factors of a tile pair (0 or 1 / (1 - p))

    /** The rebiased queries' buffer, at least {@code floats} long. */
    float[] rebiasBuffer(int floats) {
        rebiasBuffer = grow(rebiasBuffer, floats);
        return rebiasBuffer;
    }

    /** The wide key blocks' score buffer, at least {@code floats} long. */
    float[] wideScores(int floats) {
        wideS = grow(wideS, floats);
        return wideS;
    }

    /** The wide key blocks' value buffer, at least {@code floats} long. */
    float[] wideValues(int floats) {
        wideV = grow(wideV, floats);
        return wideV;
    }

    static Scratch acquire() {
        Scratch scratch = POOL.poll();
        return scratch != null ? scratch : new Scratch();
    }

    static void release(Scratch scratch) {
        POOL.offer(scratch);
    }

    /** Grows the buffers to hold a tile of the given geometry. */
    void ensure(int tileRows, int keyTile, int d, int dvp) {
        this.dvp = dvp;
        q = grow(q, tileRows * d);
        kt = grow(kt, d * keyTile);
        v = grow(v, keyTile * dvp);
        s = grow(s, tileRows * keyTile);
        o = grow(o, tileRows * dvp);
        row = grow(row, Math.max(d, dvp));
        qCols = grow(qCols, d * tileRows);
        sCols = grow(sCols, keyTile * tileRows);
        m = grow(m, tileRows);
        l = grow(l, tileRows);
        alpha = grow(alpha, tileRows);
        runScales = grow(runScales, keyTile);
        if (runOffsets.length < keyTile) {
            runOffsets = new int[keyTile];
            runKeys = new int[keyTile];
        }
        if (ones.length < tileRows) {
            ones = new float[tileRows];
            Arrays.fill(ones, 1f);
        }
        if (qRow.length < tileRows) {
            qRow = new int[tileRows];
            qHead = new int[tileRows];
            first = new int[tileRows];
            last = new int[tileRows];
            slope = new float[tileRows];
            dropLo = new int[tileRows];
            dropHi = new int[tileRows];
        }
        if (fuse.length < tileRows) {
            fuse = new boolean[tileRows];
        }
    }

    /** Grows the backward buffers for tiles of {@code t} and head dims {@code d}, {@code dv} (padded: {@code dPad}, {@code dvPad}). */
    void ensureBackward(int t, int d, int dPad, int dv, int dvPad) {
        kRows = grow(kRows, t * d);
        kCols = grow(kCols, dPad * t);
        vRows = grow(vRows, t * dv);
        sT = grow(sT, t * t);
        dpT = grow(dpT, t * t);
        dropT = grow(dropT, t * t);
        dkAcc = grow(dkAcc, t * dPad);
        dvAcc = grow(dvAcc, t * dvPad);
        row = grow(row, Math.max(dPad, dvPad));
        row2 = grow(row2, Math.max(dPad, dvPad));
    }

    private static float[] grow(float[] a, int size) {
        return a.length >= size ? a : new float[size];
    }
}
