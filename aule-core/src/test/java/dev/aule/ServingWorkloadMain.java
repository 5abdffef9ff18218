package dev.aule;

import dev.aule.cpu.CpuBackend;
import dev.aule.spi.PackedSequences;
import dev.aule.spi.PagedKv;
import dev.aule.testing.Tensors;

import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Run by {@link ThreadCountInvarianceTest} in JVMs of different {@code -Daule.cpu.threads}: a fixed, seeded
 * workload through every forward entry point of the cpu backend (batched decode against a few thousand keys,
 * a short batched prefill, a cache of mixed lengths, a paged cache, packed sequences), printed as
 * {@code HASH <hex>}: a 64-bit FNV-1a hash of the raw bits of every output and log-sum-exp.
 *
 * <p>Usage: {@code ServingWorkloadMain} (no arguments).
 */
public final class ServingWorkloadMain {
    private static final int QUERY_HEADS = 8;
    private static final int KV_HEADS = 2;
    private static final int HEAD_DIM = 64;
    private static final int BLOCK_SIZE = 16;

    private ServingWorkloadMain() {}

    public static void main(String[] args) {
        System.out.println(String.format(Locale.ROOT, "HASH %016x", hash()));
    }

    /** The workload's hash. */
    public static long hash() {
        CpuBackend cpu = new CpuBackend();
        SplittableRandom rnd = new SplittableRandom(77);
        AttentionOptions causal = AttentionOptions.builder().causal(true).build();
        AttentionOptions window =
                AttentionOptions.builder().causal(true).window(150, -1).build();
        Hash hash = new Hash();

        for (int[] shape : new int[][] {{3, 1, 3000}, {2, 5, 2100}, {2, 100, 333}}) { // {B, Sq, Sk}
            Tensor q = Tensors.random(rnd, DType.F32, shape[0], QUERY_HEADS, shape[1], HEAD_DIM);
            Tensor k = Tensors.random(rnd, DType.F32, shape[0], KV_HEADS, shape[2], HEAD_DIM);
            Tensor v = Tensors.random(rnd, DType.F32, shape[0], KV_HEADS, shape[2], HEAD_DIM);
            for (AttentionOptions options :
                    shape[1] > 5 ? new AttentionOptions[] {causal, window} : new AttentionOptions[] {causal}) {
                Tensor out = Tensor.allocate(DType.F32, shape[0], QUERY_HEADS, shape[1], HEAD_DIM);
                Tensor lse = Tensor.allocate(DType.F32, shape[0], QUERY_HEADS, shape[1], 1);
                cpu.forward(q, k, v, out, lse, options);
                hash.add(out).add(lse);
            }
        }

        int[] lens = {3000, 17, 0, 1500};
        Tensor q = Tensors.random(rnd, DType.F32, lens.length, QUERY_HEADS, 2, HEAD_DIM);
        Tensor kCache = Tensors.random(rnd, DType.F32, lens.length, KV_HEADS, 3000, HEAD_DIM);
        Tensor vCache = Tensors.random(rnd, DType.F32, lens.length, KV_HEADS, 3000, HEAD_DIM);
        Tensor out = Tensor.allocate(DType.F32, lens.length, QUERY_HEADS, 2, HEAD_DIM);
        Tensor lse = Tensor.allocate(DType.F32, lens.length, QUERY_HEADS, 2, 1);
        cpu.forwardCached(q, kCache, vCache, lens, out, lse, causal);
        hash.add(out).add(lse);

        int[][] tables = new int[lens.length][];
        int numBlocks = 0;
        for (int b = 0; b < lens.length; b++) {
            tables[b] = new int[(lens[b] + BLOCK_SIZE - 1) / BLOCK_SIZE];
            for (int i = 0; i < tables[b].length; i++) {
                tables[b][i] = numBlocks + tables[b].length - 1 - i; // each sequence's blocks in reverse order
            }
            numBlocks += tables[b].length;
        }
        Tensor kPool = Tensors.random(rnd, DType.F32, numBlocks, KV_HEADS, BLOCK_SIZE, HEAD_DIM);
        Tensor vPool = Tensors.random(rnd, DType.F32, numBlocks, KV_HEADS, BLOCK_SIZE, HEAD_DIM);
        cpu.forwardPaged(q, new PagedKv(kPool, vPool, tables, lens), out, lse, causal);
        hash.add(out).add(lse);

        int[] cuQ = {0, 1, 65, 165};
        int[] cuK = {0, 3000, 3064, 3397};
        Tensor packedQ = Tensors.random(rnd, DType.F32, 1, QUERY_HEADS, cuQ[cuQ.length - 1], HEAD_DIM);
        Tensor packedK = Tensors.random(rnd, DType.F32, 1, KV_HEADS, cuK[cuK.length - 1], HEAD_DIM);
        Tensor packedV = Tensors.random(rnd, DType.F32, 1, KV_HEADS, cuK[cuK.length - 1], HEAD_DIM);
        Tensor packedOut = Tensor.allocate(DType.F32, 1, QUERY_HEADS, cuQ[cuQ.length - 1], HEAD_DIM);
        Tensor packedLse = Tensor.allocate(DType.F32, 1, QUERY_HEADS, cuQ[cuQ.length - 1], 1);
        cpu.forwardVarlen(packedQ, packedK, packedV, new PackedSequences(cuQ, cuK), packedOut, packedLse, causal);
        hash.add(packedOut).add(packedLse);
        return hash.value;
    }

    /** 64-bit FNV-1a over the raw bits of floats. */
    private static final class Hash {
        long value = 0xcbf29ce484222325L;

        Hash add(Tensor t) {
            for (float f : t.toFloatArray()) {
                int bits = Float.floatToRawIntBits(f);
                for (int i = 0; i < 4; i++) {
                    value ^= (bits >>> (8 * i)) & 0xff;
                    value *= 0x100000001b3L;
                }
            }
            return this;
        }
    }
}
