/**
 * aule-attention: exact FlashAttention in O(N) memory for the JVM.
 *
 * <p>What a user calls lives in {@code dev.aule} (the {@code Attention} facade, {@code Tensor},
 * options, backend selection), {@code dev.aule.mask} (dense masks, biases, MaskMods, ScoreMods,
 * block masks) and {@code dev.aule.serving} (KV caches, paged caches, RoPE). What a backend
 * implements and uses is {@code dev.aule.spi}. Backends are found with {@link java.util.ServiceLoader};
 * this module provides {@code cpu} and {@code reference}, whose packages are not exported. The Vector
 * API is optional: without {@code --add-modules jdk.incubator.vector} the CPU backend runs its
 * scalar path.
 */
// "module": the qualified export below names dev.aule.models, which is not on this module's compile path.
@SuppressWarnings("module")
module dev.aule {
    requires static jdk.incubator.vector;

    exports dev.aule;
    exports dev.aule.mask;
    exports dev.aule.serving;
    exports dev.aule.spi;
    // The register-blocked product kernel, for aule-models' dense layers (one GEMM in the project, not two).
    exports dev.aule.cpu.vector to
            dev.aule.models;
    // The library's one team of CPU threads, for aule-models' dense layers (one pool, not two).
    exports dev.aule.cpu.workers to
            dev.aule.models;
    // The float64 oracle, for the vulkan backend's first-use check of its cooperative-matrix kernel.
    exports dev.aule.reference to
            dev.aule.vulkan;

    uses dev.aule.spi.AttentionBackend;

    provides dev.aule.spi.AttentionBackend with
            dev.aule.cpu.CpuBackend,
            dev.aule.reference.ReferenceBackend;
}
