package dev.aule.vulkan;

import dev.aule.AttentionOptions;
import dev.aule.Backends;
import dev.aule.DType;
import dev.aule.Tensor;
import dev.aule.spi.Accuracy;
import dev.aule.spi.AttentionBackend;
import dev.aule.testing.Tensors;
import org.junit.jupiter.api.Test;

import java.lang.module.ModuleDescriptor;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The jar's boundary, run twice: by the default test execution on the class path (where
 * {@code META-INF/services} is what finds the backend) and by the {@code module-path} execution of
 * aule-vulkan's pom, which alone sets {@value #MODULE_PATH_PROPERTY} (where the {@code provides} clause
 * does, and the shaders load as resources of a named module).
 */
class ModuleBoundaryTest {
    private static final String MODULE_PATH_PROPERTY = "aule.test.modulePath";
    private static final boolean ON_MODULE_PATH = Boolean.getBoolean(MODULE_PATH_PROPERTY);

    @Test
    void theBackendIsANamedModuleExactlyWhenRunOnTheModulePath() {
        Module module = VulkanBackend.class.getModule();
        assertEquals(ON_MODULE_PATH, module.isNamed(), module + ", -D" + MODULE_PATH_PROPERTY + "=" + ON_MODULE_PATH);
        if (ON_MODULE_PATH) {
            ModuleDescriptor descriptor = module.getDescriptor();
            assertEquals("dev.aule.vulkan", descriptor.name());
            assertEquals(
                    Set.of("dev.aule.vulkan"),
                    descriptor.exports().stream()
                            .map(ModuleDescriptor.Exports::source)
                            .collect(Collectors.toSet()));
            assertEquals(
                    List.of(VulkanBackend.class.getName()),
                    descriptor.provides().stream()
                            .filter(p -> p.service().equals(AttentionBackend.class.getName()))
                            .flatMap(p -> p.providers().stream())
                            .toList());
        }
    }

    /** ServiceLoader (through {@link Backends}) finds the backend, and a small causal GQA forward runs. */
    @Test
    void serviceLoaderFindsTheBackendAndItsShadersRun() {
        VulkanTestSupport.backend(); // skips or fails as the other tests do when there is no device
        AttentionBackend vulkan = Backends.get("vulkan");
        assertInstanceOf(VulkanBackend.class, vulkan);
        assertEquals(VulkanBackend.class.getModule(), vulkan.getClass().getModule());

        SplittableRandom rnd = new SplittableRandom(17);
        Tensor q = Tensors.random(rnd, DType.F32, 1, 4, 9, 16);
        Tensor k = Tensors.random(rnd, DType.F32, 1, 2, 11, 16);
        Tensor v = Tensors.random(rnd, DType.F32, 1, 2, 11, 16);
        AttentionOptions causal = AttentionOptions.builder().causal(true).build();
        Tensor expected = Tensor.allocate(DType.F32, 1, 4, 9, 16);
        Backends.get("reference").forward(q, k, v, expected, null, causal);
        Tensor out = Tensor.allocate(DType.F32, 1, 4, 9, 16);
        vulkan.forward(q, k, v, out, null, causal);
        double error = Accuracy.relativeError(out, expected);
        assertTrue(error < 1e-5, "error " + error);
    }
}
