package dev.aule.cli;

import dev.aule.bench.BenchShape;
import picocli.CommandLine.Option;

import java.util.ArrayList;
import java.util.List;

/** {@code --seq}, {@code --head-dim}, {@code --heads} and {@code --causal}: the prefill shapes a sweep times. */
final class SweepShapes {
    @Option(
            names = "--seq",
            split = ",",
            defaultValue = "512,1024,2048,4096",
            description = "sequence lengths S (default ${DEFAULT-VALUE})")
    private List<Integer> seqs;

    @Option(
            names = "--head-dim",
            split = ",",
            defaultValue = "64,128",
            description = "head dims D (default ${DEFAULT-VALUE})")
    private int[] headDims;

    @Option(names = "--heads", defaultValue = "8", description = "heads H (default ${DEFAULT-VALUE})")
    private int heads;

    @Option(
            names = "--causal",
            split = ",",
            arity = "1",
            defaultValue = "false,true",
            description = "masking: false (full), true (causal) or both (default ${DEFAULT-VALUE})")
    private List<Boolean> causal;

    /** Throws {@code command}'s usage error unless every head count, length and dim is at least 1. */
    void check(AuleCommand command) {
        command.requireAtLeast("--heads", heads, 1);
        seqs.forEach(s -> command.requireAtLeast("--seq values", s, 1));
        for (int d : headDims) {
            command.requireAtLeast("--head-dim values", d, 1);
        }
    }

    /** {@return every combination, by head dim, then masking, then sequence length} */
    List<BenchShape> shapes() {
        List<BenchShape> shapes = new ArrayList<>();
        for (int d : headDims) {
            for (boolean c : causal) {
                for (int s : seqs) {
                    shapes.add(new BenchShape(heads, s, d, c));
                }
            }
        }
        return shapes;
    }
}
