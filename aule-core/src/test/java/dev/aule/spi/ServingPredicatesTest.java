package dev.aule.spi;

import dev.aule.AttentionOptions;
import dev.aule.DType;
import dev.aule.Tensor;
import org.junit.jupiter.api.Test;

import java.util.EnumSet;
import java.util.function.Predicate;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Serving selection passes over a backend that cannot run the call: head dims, q's dtype, per-batch ALiBi, dropout,
 * sinks; and, for calls on host-memory caches, over a backend that computes in device memory.
 */
class ServingPredicatesTest {
    // like vulkan with SERVING: head dims up to 256, sinks, no per-batch ALiBi, no dropout
    private final Capabilities device =
            Capabilities.of(256, EnumSet.allOf(DType.class), Capabilities.Feature.SERVING, Capabilities.Feature.SINKS);
    private final Capabilities noServing = Capabilities.of(512, EnumSet.allOf(DType.class));
    private final Capabilities f32Only =
            Capabilities.of(512, EnumSet.of(DType.F32), Capabilities.Feature.SERVING, Capabilities.Feature.DROPOUT);

    @Test
    void headDimsOverTheLimitAndUnsupportedOptionsAreNotSelected() {
        AttentionOptions plain = AttentionOptions.builder().causal(true).build();
        Tensor q128 = Tensor.allocate(DType.F16, 1, 2, 1, 128);
        Tensor q512 = Tensor.allocate(DType.F32, 1, 2, 1, 512);
        assertTrue(ServingPredicates.serving(q128, 128, plain).test(device));
        assertFalse(ServingPredicates.serving(q512, 512, plain).test(device), "q's head dim over 256");
        assertFalse(ServingPredicates.serving(q128, 384, plain).test(device), "the value dim over 256");
        assertFalse(ServingPredicates.serving(q128, 128, plain).test(noServing), "no serving entry points");
        assertTrue(ServingPredicates.runs(noServing, q128, 128, plain), "runs() leaves SERVING aside");
        assertFalse(ServingPredicates.serving(q128, 128, plain).test(f32Only), "F16 queries");
        assertTrue(ServingPredicates.serving(q512, 512, plain).test(f32Only));

        AttentionOptions perBatch = AttentionOptions.builder()
                .alibiSlopesPerBatch(new float[][] {{0.5f, 0.25f}})
                .build();
        AttentionOptions dropout = AttentionOptions.builder().dropout(0.1f, 7).build();
        AttentionOptions sinks =
                AttentionOptions.builder().sinks(new float[] {0f, 1f}).build();
        assertFalse(ServingPredicates.serving(q128, 128, perBatch).test(device));
        assertFalse(ServingPredicates.serving(q128, 128, dropout).test(device));
        assertTrue(ServingPredicates.serving(q128, 128, sinks).test(device));
        assertFalse(ServingPredicates.serving(q512, 512, sinks).test(f32Only));
        assertTrue(ServingPredicates.serving(q512, 512, dropout).test(f32Only));

        Predicate<Capabilities> unknown = ServingPredicates.serving(null, 0, null);
        assertTrue(unknown.test(device), "missing arguments pass, for the backend's validation to name");
        assertFalse(unknown.test(noServing));
    }

    @Test
    void hostCachesPassOverDeviceMemoryAndPackedCallsDoNot() {
        Capabilities gpu = Capabilities.of(
                256,
                EnumSet.allOf(DType.class),
                Capabilities.Feature.SERVING,
                Capabilities.Feature.BACKWARD,
                Capabilities.Feature.QUANTIZED_KV,
                Capabilities.Feature.DEVICE_MEMORY);
        Capabilities host = Capabilities.of(
                512,
                EnumSet.allOf(DType.class),
                Capabilities.Feature.SERVING,
                Capabilities.Feature.BACKWARD,
                Capabilities.Feature.QUANTIZED_KV,
                Capabilities.Feature.DROPOUT);
        AttentionOptions plain = AttentionOptions.builder().causal(true).build();
        AttentionOptions dropout = AttentionOptions.builder().dropout(0.1f, 7).build();
        Tensor q = Tensor.allocate(DType.F32, 1, 2, 4, 64);
        Tensor q512 = Tensor.allocate(DType.F32, 1, 2, 4, 512);
        assertTrue(gpu.deviceMemory());
        assertFalse(host.deviceMemory());

        assertFalse(ServingPredicates.serving(q, 64, plain).test(gpu), "a host cache on a device backend");
        assertTrue(ServingPredicates.serving(q, 64, plain).test(host));
        assertTrue(ServingPredicates.runs(gpu, q, 64, plain), "a device cache's own backend still runs it");
        assertFalse(ServingPredicates.quantized(q, 64, plain).test(gpu), "a host quantized cache on a device backend");
        assertTrue(ServingPredicates.quantized(q, 64, plain).test(host));
        assertFalse(ServingPredicates.quantized(q, 64, plain).test(device), "no QUANTIZED_KV");

        assertTrue(ServingPredicates.packed(q, 64, plain).test(gpu), "packed keys are the call's own");
        assertFalse(ServingPredicates.packed(q, 64, dropout).test(gpu), "dropout");
        assertFalse(ServingPredicates.packed(q512, 512, plain).test(gpu), "head dim over 256");
        assertTrue(ServingPredicates.packed(q512, 512, dropout).test(host));
        assertTrue(ServingPredicates.packedBackward(q, 64, plain).test(gpu));
        assertFalse(ServingPredicates.packedBackward(q, 64, plain).test(device), "no BACKWARD");
        assertFalse(ServingPredicates.packedBackward(q, 64, dropout).test(gpu));
        assertTrue(ServingPredicates.packedBackward(null, 0, null).test(gpu), "missing arguments pass");
    }
}
