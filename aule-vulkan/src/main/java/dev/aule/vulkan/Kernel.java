package dev.aule.vulkan;

/** The compute shaders: their GLSL resource and how many storage buffers they bind (0 .. n-1). */
enum Kernel {
    // The forward kernels bind 8: bindings 6 and 7 are the serving variants' key counts and block table
    // (see ServingKeys); the dense call binds placeholders there.
    FORWARD("forward.comp", 8),
    /**
     * forward.comp with MASKS: mask bits, F32 bias and tile table from {@link DeviceMasks} at bindings 6 .. 8 (a
     * masked call is never a serving call, so the two uses of bindings 6 and 7 never meet in one variant).
     */
    FORWARD_MASKED("forward.comp", 9),
    /** forward_blocked.comp with MASKS (SUBGROUP_LAYOUT 0), bindings as {@link #FORWARD_MASKED}. */
    FORWARD_BLOCKED_MASKED("forward_blocked.comp", 9),
    /** forward_blocked.comp with MASKS and SUBGROUP_LAYOUT 1. */
    FORWARD_BLOCKED_SUBGROUP_MASKED("forward_blocked.comp", 9),
    FORWARD_BLOCKED("forward_blocked.comp", 8),
    /** The blocked forward with one subgroup per row group (SUBGROUP_LAYOUT 1; see TilePlan.blockedSubgroupLayout). */
    FORWARD_BLOCKED_SUBGROUP("forward_blocked.comp", 8),
    DELTA("delta.comp", 3),
    BACKWARD_KV("backward_kv.comp", 9),
    BACKWARD_Q("backward_q.comp", 8),
    /** backward_kv.comp with MASKS: the {@link DeviceMasks} of the backward's plan at bindings 9 .. 11. */
    BACKWARD_KV_MASKED("backward_kv.comp", 12),
    /** backward_q.comp with MASKS: the {@link DeviceMasks} of the backward's plan at bindings 8 .. 10. */
    BACKWARD_Q_MASKED("backward_q.comp", 11),
    PACK16("pack16.comp", 2),
    DECODE("decode.comp", 8),
    /** Decode on CPU devices: no shared memory, each thread its own keys and partial (decode_direct.comp). */
    DECODE_DIRECT("decode_direct.comp", 8),
    DECODE_MERGE("merge.comp", 4),
    /** The forward on cooperative matrices (VK_KHR_cooperative_matrix), enabled per device by CoopCheck. */
    FORWARD_COOP("forward_coop.comp", 6),
    /** Adds sink logits to a forward's out and lse (sinks.comp). */
    SINKS("sinks.comp", 3);

    /** The most buffers any kernel binds: what a descriptor pool reserves per set. */
    static final int MAX_BINDINGS =
            java.util.Arrays.stream(values()).mapToInt(k -> k.bindings).max().orElseThrow();

    final String resource;
    final int bindings;

    /** {@return whether it is compiled with MASKS (its GLSL's {@code #ifdef MASKS} regions are in)} */
    boolean masked() {
        return name().endsWith("_MASKED");
    }

    Kernel(String resource, int bindings) {
        this.resource = resource;
        this.bindings = bindings;
    }
}
