package dev.aule.bench;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Gradients;
import dev.aule.Tensor;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.BackwardInputs;

/**
 * What dropout costs the cpu forward and backward: B = 1, H = 8, Sq = Sk = seq, D = 64, F32, the same call without
 * and with dropout ({@code p = 0.1}) run alternately, so a busy machine's drift reaches both alike; prints the
 * fastest and the mean of each after 3 warm-up rounds.
 *
 * <pre>
 * java --add-modules jdk.incubator.vector -cp "aule-bench/target/aule-bench.jar:aule-bench/target/lib/*" \
 *      dev.aule.bench.DropoutCost [seq] [causal|full] [rounds]
 * </pre>
 */
public final class DropoutCost {
    private static final int HEADS = 8;
    private static final int HEAD_DIM = 64;
    private static final int WARM_UP = 3;

    private DropoutCost() {}

    /**
     * Runs the comparison.
     *
     * @param args the sequence length (2048), {@code causal} or {@code full}, and the timed rounds (20)
     */
    public static void main(String[] args) {
        int seq = args.length > 0 ? Integer.parseInt(args[0]) : 2048;
        boolean causal = args.length > 1 && args[1].equals("causal");
        int rounds = args.length > 2 ? Integer.parseInt(args[2]) : 20;
        Tensor q = Inputs.random(1, 1, HEADS, seq, HEAD_DIM);
        Tensor k = Inputs.random(2, 1, HEADS, seq, HEAD_DIM);
        Tensor v = Inputs.random(3, 1, HEADS, seq, HEAD_DIM);
        Tensor dOut = Inputs.random(4, 1, HEADS, seq, HEAD_DIM);
        Tensor out = Inputs.zeros(1, HEADS, seq, HEAD_DIM);
        Tensor lse = Tensor.allocate(DType.F32, 1, HEADS, seq, 1);
        Gradients grads = new Gradients(
                Inputs.zeros(1, HEADS, seq, HEAD_DIM),
                Inputs.zeros(1, HEADS, seq, HEAD_DIM),
                Inputs.zeros(1, HEADS, seq, HEAD_DIM));
        AttentionBackend cpu = Backends.get("cpu");
        AttentionOptions[] options = {
            AttentionOptions.builder().causal(causal).build(),
            AttentionOptions.builder().causal(causal).dropout(0.1f, 1).build()
        };
        double[] forwardMin = {Double.MAX_VALUE, Double.MAX_VALUE};
        double[] backwardMin = {Double.MAX_VALUE, Double.MAX_VALUE};
        double[] forwardSum = new double[2];
        double[] backwardSum = new double[2];
        for (int round = 0; round < WARM_UP + rounds; round++) {
            for (int m = 0; m < 2; m++) {
                long t0 = System.nanoTime();
                cpu.forward(q, k, v, out, lse, options[m]);
                long t1 = System.nanoTime();
                cpu.backward(new BackwardInputs(q, k, v, out, dOut, lse), grads, options[m]);
                long t2 = System.nanoTime();
                if (round >= WARM_UP) {
                    forwardMin[m] = Math.min(forwardMin[m], (t1 - t0) / 1e6);
                    backwardMin[m] = Math.min(backwardMin[m], (t2 - t1) / 1e6);
                    forwardSum[m] += (t1 - t0) / 1e6;
                    backwardSum[m] += (t2 - t1) / 1e6;
                }
            }
        }
        System.out.println(cpu.description());
        System.out.printf("S=%d H=%d D=%d %s, %d rounds%n", seq, HEADS, HEAD_DIM, causal ? "causal" : "full", rounds);
        print("forward ", forwardMin, forwardSum, rounds);
        print("backward", backwardMin, backwardSum, rounds);
    }

    private static void print(String what, double[] min, double[] sum, int rounds) {
        System.out.printf(
                "%s fastest %.1f -> %.1f ms (%+.1f %%), mean %.1f -> %.1f ms (%+.1f %%)%n",
                what,
                min[0],
                min[1],
                100 * (min[1] / min[0] - 1),
                sum[0] / rounds,
                sum[1] / rounds,
                100 * (sum[1] / sum[0] - 1));
    }
}
