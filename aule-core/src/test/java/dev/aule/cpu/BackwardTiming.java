package dev.aule.cpu;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Gradients;
import dev.aule.Tensor;
import dev.aule.spi.AttentionShape;
import dev.aule.spi.BackwardInputs;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Hand-run timing of the CPU backward (not a unit test): B = 1, H = 8, S = 2048, D = 64 and 128,
 * non-causal and causal, F32; warmed up, median of several runs. FLOPs are the contract's: 2.5 x the
 * forward's. Beside it, in the same JVM, the machine's F32 GEMM rate on the same micro-kernel, so
 * the ratio is measured in one run.
 *
 * <pre>
 * mvn -q -pl aule-core test-compile
 * java --add-modules jdk.incubator.vector -cp aule-core/target/classes:aule-core/target/test-classes \
 *      dev.aule.cpu.BackwardTiming [runs]
 * </pre>
 */
public final class BackwardTiming {
    private BackwardTiming() {}

    public static void main(String[] args) {
        int runs = args.length > 0 ? Integer.parseInt(args[0]) : 7;
        CpuBackend cpu = new CpuBackend();
        System.out.println("cpu backend: " + cpu.description());
        double gemm = gemmGflops(runs);
        System.out.printf(
                "F32 GEMM (n = 1536, same 4x4-vector micro-kernel, %d threads): %.1f GFLOP/s%n",
                CpuPool.threads(), gemm);
        int seq = 2048;
        int heads = 8;
        for (int d : new int[] {64, 128}) {
            for (boolean causal : new boolean[] {false, true}) {
                SplittableRandom rnd = new SplittableRandom(1);
                Tensor q = random(rnd, heads, seq, d);
                Tensor k = random(rnd, heads, seq, d);
                Tensor v = random(rnd, heads, seq, d);
                Tensor dOut = random(rnd, heads, seq, d);
                Tensor out = Tensor.allocate(DType.F32, 1, heads, seq, d);
                Tensor lse = Tensor.allocate(DType.F32, 1, heads, seq, 1);
                Tensor dq = Tensor.allocate(DType.F32, 1, heads, seq, d);
                Tensor dk = Tensor.allocate(DType.F32, 1, heads, seq, d);
                Tensor dv = Tensor.allocate(DType.F32, 1, heads, seq, d);
                AttentionOptions options =
                        AttentionOptions.builder().causal(causal).build();
                double forwardFlops = AttentionShape.ofInputs(q, k, v, options, cpu.capabilities())
                        .forwardFlops(options);
                double fwd = median(runs, () -> cpu.forward(q, k, v, out, lse, options));
                double bwd = median(
                        runs,
                        () -> cpu.backward(
                                new BackwardInputs(q, k, v, out, dOut, lse), new Gradients(dq, dk, dv), options));
                double gflops = 2.5 * forwardFlops / bwd / 1e9;
                System.out.printf(
                        "S=%d D=%3d %-10s forward %7.1f ms %6.1f GFLOP/s | backward %7.1f ms %6.1f GFLOP/s"
                                + " = %4.1f%% of GEMM%n",
                        seq,
                        d,
                        causal ? "causal" : "non-causal",
                        fwd * 1e3,
                        forwardFlops / fwd / 1e9,
                        bwd * 1e3,
                        gflops,
                        100 * gflops / gemm);
            }
        }
    }

    private static double median(int runs, Runnable call) {
        for (int i = 0; i < 3; i++) {
            call.run();
        }
        double[] seconds = new double[runs];
        for (int i = 0; i < runs; i++) {
            long start = System.nanoTime();
            call.run();
            seconds[i] = (System.nanoTime() - start) / 1e9;
        }
        Arrays.sort(seconds);
        return seconds[runs / 2];
    }

    /**
     * {@code C = A B} for n x n matrices with {@link TileMath#multiply}: each task a 64-row block of A
     * against one 64-column panel of B packed {@code [n][64]}, an L2-sized pair (768 KiB). The
     * machine's rate with the kernel the attention uses, not a tuned BLAS.
     */
    private static double gemmGflops(int runs) {
        TileMath math = TileMaths.best();
        int t = math.keyTile();
        int n = 1536;
        SplittableRandom rnd = new SplittableRandom(2);
        int rowBlocks = n / 64;
        float[][] a = new float[rowBlocks][64 * n]; // A in blocks of 64 rows, each row-major
        for (float[] block : a) {
            for (int i = 0; i < block.length; i++) {
                block[i] = (float) rnd.nextDouble();
            }
        }
        int panels = n / t;
        float[][] b = new float[panels][n * t];
        for (float[] panel : b) {
            for (int i = 0; i < panel.length; i++) {
                panel[i] = (float) rnd.nextDouble();
            }
        }
        float[][] c = new float[rowBlocks * panels][64 * t];
        double seconds = median(
                runs,
                () -> CpuPool.forEach(
                        rowBlocks * panels,
                        Integer.MAX_VALUE,
                        item -> math.multiply(a[item / panels], 64, n, b[item % panels], 0, c[item])));
        return 2.0 * n * n * n / seconds / 1e9;
    }

    private static Tensor random(SplittableRandom rnd, int heads, int seq, int d) {
        float[] data = new float[heads * seq * d];
        for (int i = 0; i < data.length; i++) {
            data[i] = (float) (rnd.nextDouble() * 2 - 1);
        }
        return Tensor.of(data, 1, heads, seq, d);
    }
}
