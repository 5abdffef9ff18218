package dev.aule.cli;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.bench.Stopwatch;
import dev.aule.spi.Visibility;
import dev.aule.vulkan.VulkanBackend;
import dev.aule.vulkan.VulkanTensor;
import me.tongfei.progressbar.ProgressBar;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

import static dev.aule.cli.TextTable.Column.left;
import static dev.aule.cli.TextTable.Column.right;

/**
 * {@code aule gpu-check}: on a machine with a Vulkan device, the device and its kernels, the conformance sweep
 * on it, and a grid of timed prefill and decode calls on device-resident tensors (nothing copied per call), so
 * one command answers "is it right here, and how fast".
 */
@Command(
        name = "gpu-check",
        description = {
            "On the Vulkan device: print it, run the conformance sweep against the float64 reference, then time",
            "prefill (D 64 and 128, causal and not, and GQA 32:8) and decode (GQA 32:8, D 128) on device tensors.",
            "Exits 1 if there is no Vulkan device or a conformance case fails."
        })
final class GpuCheckCommand extends AuleCommand {
    @Option(
            names = "--quick",
            description = "one conformance case per feature and a small grid (for CPU Vulkan drivers such as lavapipe)")
    private boolean quick;

    @Option(
            names = "--seq",
            split = ",",
            paramLabel = "S",
            description = "prefill sequence lengths (default 1024,2048,4096,8192,16384; --quick 128,256)")
    private List<Integer> seq;

    @Option(
            names = "--decode-seq",
            split = ",",
            paramLabel = "SK",
            description = "decode context lengths (default 1024,4096,16384,65536,131072; --quick 1024,4096)")
    private List<Integer> decodeSeq;

    @Option(
            names = "--dtype",
            paramLabel = "TYPE",
            description = "storage type of q, k, v and out in the grid: F16 (default), BF16 or F32")
    private DType dtype = DType.F16;

    @Option(names = "--runs", paramLabel = "N", description = "timed calls per shape, median reported (default 5)")
    private int runs = 5;

    @Option(names = "--no-verify", description = "skip the conformance sweep")
    private boolean noVerify;

    @Override
    public Integer call() {
        requireAtLeast("--runs", runs, 1);
        List<Integer> prefill = seq != null ? seq : quick ? List.of(128, 256) : List.of(1024, 2048, 4096, 8192, 16384);
        List<Integer> decode =
                decodeSeq != null ? decodeSeq : quick ? List.of(1024, 4096) : List.of(1024, 4096, 16384, 65536, 131072);
        for (int s : prefill) {
            requireAtLeast("--seq", s, 1);
        }
        for (int s : decode) {
            requireAtLeast("--decode-seq", s, 1);
        }
        PrintWriter out = out();
        VulkanBackend vulkan = Backends.all().stream()
                .filter(VulkanBackend.class::isInstance)
                .map(VulkanBackend.class::cast)
                .findFirst()
                .orElse(null);
        if (vulkan == null || !vulkan.availability().available()) {
            out.println("No Vulkan device: "
                    + (vulkan == null
                            ? "aule-vulkan is not on the class path"
                            : vulkan.availability().reason()));
            out.flush();
            return ErrorHandlers.FAILURE;
        }
        new Labels(out, 8).print("Device", vulkan.description());
        out.println();
        out.flush();
        int verified = 0;
        if (!noVerify) {
            List<String> args = new ArrayList<>(List.of("verify", "--backend", "vulkan"));
            if (quick) {
                args.add("--quick");
            }
            verified = Main.run(Main.commandLine().setOut(out).setErr(err()), args.toArray(String[]::new));
            out.println();
        }
        prefillGrid(vulkan, prefill, out);
        out.println();
        decodeGrid(vulkan, decode, out);
        out.flush();
        return verified == 0 ? 0 : ErrorHandlers.FAILURE;
    }

    /** One prefill shape of the grid: B = 1, Sq = Sk = S. */
    private record PrefillShape(int qHeads, int kvHeads, int seq, int headDim, boolean causal) {}

    private void prefillGrid(VulkanBackend vulkan, List<Integer> seqs, PrintWriter out) {
        List<PrefillShape> shapes = new ArrayList<>();
        for (int d : new int[] {64, 128}) {
            for (boolean causal : new boolean[] {false, true}) {
                for (int s : seqs) {
                    shapes.add(new PrefillShape(8, 8, s, d, causal));
                }
            }
        }
        for (int s : seqs) {
            shapes.add(new PrefillShape(32, 8, s, 128, true));
        }
        TextTable table = new TextTable(
                left("prefill"),
                right("Hq:Hkv"),
                right("S"),
                right("D"),
                left("mask"),
                right("wall ms"),
                right("device ms"),
                right("GFLOP/s"),
                left("note"));
        out.printf(
                Locale.ROOT,
                "Prefill, B = 1, %s, device tensors, median of %d calls after 2 warm-up calls"
                        + " (GFLOP/s from the device time where the queue has timestamps):%n",
                dtype,
                runs);
        ProgressBar progress = progressBar("prefill", shapes.size());
        for (PrefillShape p : shapes) {
            AttentionOptions options =
                    AttentionOptions.builder().causal(p.causal()).build();
            String[] row = {
                "forward",
                p.qHeads() + ":" + p.kvHeads(),
                Integer.toString(p.seq()),
                Integer.toString(p.headDim()),
                p.causal() ? "causal" : "full",
                "",
                "",
                "",
                ""
            };
            try {
                Timed t = time(vulkan, 1, p.qHeads(), p.kvHeads(), p.seq(), p.seq(), p.headDim(), options);
                long pairs = Visibility.of(p.seq(), p.seq(), options).pairs();
                double flops = 4.0 * p.qHeads() * p.headDim() * pairs;
                row[5] = String.format(Locale.ROOT, "%.3f", t.wallSeconds() * 1e3);
                row[6] = t.deviceText();
                row[7] = String.format(Locale.ROOT, "%.1f", flops / t.seconds() / 1e9);
            } catch (RuntimeException e) {
                row[8] = "skipped: " + e.getMessage();
            }
            table.add(row);
            progress.step();
        }
        progress.close();
        out.print(table.render(""));
    }

    private void decodeGrid(VulkanBackend vulkan, List<Integer> contexts, PrintWriter out) {
        TextTable table = new TextTable(
                left("decode"),
                right("Hq:Hkv"),
                right("Sk"),
                right("D"),
                right("wall ms"),
                right("device ms"),
                right("GB/s"),
                left("note"));
        out.printf(
                Locale.ROOT,
                "Decode, B = 1, one query, %s, device tensors, median of %d calls (GB/s: K and V bytes read, over"
                        + " the device time where the queue has timestamps):%n",
                dtype,
                runs);
        ProgressBar progress = progressBar("decode", contexts.size());
        AttentionOptions options = AttentionOptions.builder().causal(true).build();
        for (int sk : contexts) {
            String[] row = {"forward", "32:8", Integer.toString(sk), "128", "", "", "", ""};
            try {
                Timed t = time(vulkan, 1, 32, 8, 1, sk, 128, options);
                double bytes = 2.0 * 8 * sk * 128 * dtype.byteSize();
                row[4] = String.format(Locale.ROOT, "%.3f", t.wallSeconds() * 1e3);
                row[5] = t.deviceText();
                row[6] = String.format(Locale.ROOT, "%.1f", bytes / t.seconds() / 1e9);
            } catch (RuntimeException e) {
                row[7] = "skipped: " + e.getMessage();
            }
            table.add(row);
            progress.step();
        }
        progress.close();
        out.print(table.render(""));
    }

    /** Median wall and device seconds of one call (device: NaN where the queue has no timestamps). */
    private record Timed(double wallSeconds, double deviceSeconds) {
        /** The device time where there is one, else the wall time: what the rates are computed from. */
        double seconds() {
            return Double.isNaN(deviceSeconds) ? wallSeconds : deviceSeconds;
        }

        String deviceText() {
            return Double.isNaN(deviceSeconds) ? "-" : String.format(Locale.ROOT, "%.3f", deviceSeconds * 1e3);
        }
    }

    /** Median wall and device seconds of one forward on device tensors of this shape, filled with uniform values. */
    private Timed time(
            VulkanBackend vulkan,
            int batch,
            int qHeads,
            int kvHeads,
            int sq,
            int sk,
            int headDim,
            AttentionOptions options) {
        SplittableRandom rnd = new SplittableRandom(1);
        try (VulkanTensor q = vulkan.upload(RandomFill.fill(Tensor.allocate(dtype, batch, qHeads, sq, headDim), rnd));
                VulkanTensor k =
                        vulkan.upload(RandomFill.fill(Tensor.allocate(dtype, batch, kvHeads, sk, headDim), rnd));
                VulkanTensor v =
                        vulkan.upload(RandomFill.fill(Tensor.allocate(dtype, batch, kvHeads, sk, headDim), rnd));
                VulkanTensor o = vulkan.allocate(dtype, batch, qHeads, sq, headDim)) {
            Stopwatch stopwatch = new Stopwatch(Stopwatch.Warmup.calls(2), runs);
            List<Long> deviceNanos = new ArrayList<>();
            double wall = stopwatch
                    .time(() -> {}, () -> {
                        vulkan.forward(q, k, v, o, null, options);
                        deviceNanos.add(vulkan.lastDeviceNanos().orElse(-1));
                    })
                    .medianSeconds();
            List<Long> timed = deviceNanos.subList(deviceNanos.size() - runs, deviceNanos.size());
            if (timed.contains(-1L)) {
                return new Timed(wall, Double.NaN);
            }
            long[] sorted = timed.stream().mapToLong(Long::longValue).sorted().toArray();
            double median = sorted.length % 2 == 1
                    ? sorted[sorted.length / 2]
                    : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2.0;
            return new Timed(wall, median / 1e9);
        }
    }
}
