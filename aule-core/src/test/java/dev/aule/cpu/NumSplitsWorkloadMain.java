package dev.aule.cpu;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.CacheIndex;
import dev.aule.testing.Tensors;

import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Run by {@link NumSplitsTest} in JVMs of different {@code -Daule.cpu.threads}: a seeded decode workload through
 * the cpu forward and cached entry points for {@code numSplits} 0 to 8, printed as {@code HASH <hex>} (64-bit FNV-1a
 * of the raw bits of every output and log-sum-exp).
 *
 * <p>Usage: {@code NumSplitsWorkloadMain} (no arguments).
 */
public final class NumSplitsWorkloadMain {
    private NumSplitsWorkloadMain() {}

    public static void main(String[] args) {
        System.out.println(String.format(Locale.ROOT, "HASH %016x", hash()));
    }

    /** The workload's hash. */
    static long hash() {
        CpuBackend cpu = new CpuBackend();
        SplittableRandom rnd = new SplittableRandom(91);
        long hash = 0xcbf29ce484222325L;
        Tensor q = Tensors.random(rnd, DType.F32, 2, 8, 1, 64);
        Tensor k = Tensors.random(rnd, DType.F32, 2, 2, 3000, 64);
        Tensor v = Tensors.random(rnd, DType.F32, 2, 2, 3000, 64);
        Tensor qc = Tensors.random(rnd, DType.F32, 3, 8, 2, 64);
        for (int n = 0; n <= 8; n++) {
            AttentionOptions options =
                    AttentionOptions.builder().causal(true).numSplits(n).build();
            Tensor out = Tensor.allocate(DType.F32, 2, 8, 1, 64);
            Tensor lse = Tensor.allocate(DType.F32, 2, 8, 1, 1);
            cpu.forward(q, k, v, out, lse, options);
            hash = add(add(hash, out), lse);
            Tensor cachedOut = Tensor.allocate(DType.F32, 3, 8, 2, 64);
            Tensor cachedLse = Tensor.allocate(DType.F32, 3, 8, 2, 1);
            cpu.forwardCached(
                    qc,
                    k,
                    v,
                    new CacheIndex(new int[] {3000, 2100, 700}, new int[] {1, 0, 1}, new int[] {5, 0, 0}),
                    cachedOut,
                    cachedLse,
                    options);
            hash = add(add(hash, cachedOut), cachedLse);
        }
        return hash;
    }

    private static long add(long value, Tensor t) {
        for (float f : t.toFloatArray()) {
            int bits = Float.floatToRawIntBits(f);
            for (int i = 0; i < 4; i++) {
                value ^= (bits >>> (8 * i)) & 0xff;
                value *= 0x100000001b3L;
            }
        }
        return value;
    }
}
