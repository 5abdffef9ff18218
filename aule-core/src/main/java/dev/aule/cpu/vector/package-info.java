/**
 * The CPU backend's SIMD kernels on the Vector API, split by job: {@link dev.aule.cpu.vector.Products} (the
 * register-blocked matrix products), {@link dev.aule.cpu.vector.Scores} (decode's dot products),
 * {@link dev.aule.cpu.vector.Elementwise} (exp, tanh, softcap, ALiBi, the softmax backward),
 * {@link dev.aule.cpu.vector.Reductions} (row max and sums in a fixed order) and
 * {@link dev.aule.cpu.vector.HalfWidening} (F16/BF16 to float), all on the width {@link dev.aule.cpu.vector.SimdWidth}
 * chooses once per JVM. {@code dev.aule.cpu.VectorTileMath} is the one seam the kernels call them through.
 *
 * <p>Internal: module-info does not export this package, so on the module path nothing outside the module can
 * reach it. Its classes are public for aule-bench's SGEMM yardstick, which runs on the class path (where every
 * package is reachable) and calls {@link dev.aule.cpu.vector.Products#multiply} so that "percent of GEMM"
 * measures the library's own product kernel. Classes here load the Vector API: touch them only when
 * {@code jdk.incubator.vector} is in the boot layer.
 */
package dev.aule.cpu.vector;
