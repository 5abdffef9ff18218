/**
 * aule-attention: exact FlashAttention in O(N) memory for the JVM.
 *
 * <p>The API lives in {@code dev.aule}. Backends are found with {@link java.util.ServiceLoader};
 * this module provides {@code cpu} and {@code reference}. The Vector API is optional: without
 * {@code --add-modules jdk.incubator.vector} the CPU backend runs its scalar path.
 */
module dev.aule {
    requires static jdk.incubator.vector;

    exports dev.aule;

    uses dev.aule.AttentionBackend;

    provides dev.aule.AttentionBackend with
            dev.aule.cpu.CpuBackend,
            dev.aule.reference.ReferenceBackend;
}
