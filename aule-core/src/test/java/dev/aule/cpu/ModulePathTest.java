package dev.aule.cpu;

import dev.aule.Attention;
import dev.aule.Backends;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Run by the build's module-path execution (which sets {@value #PROPERTY}): the classes really come from the
 * named module dev.aule, the backends are found through its {@code provides}, and the kernels' package stays
 * unexported. Skipped on the class path.
 */
class ModulePathTest {
    static final String PROPERTY = "aule.test.modulePath";

    @Test
    void theCoreRunsAsTheNamedModuleDevAule() {
        assumeTrue(Boolean.getBoolean(PROPERTY), "only in the module-path execution");
        Module module = Attention.class.getModule();
        assertTrue(module.isNamed());
        assertEquals("dev.aule", module.getName());
        assertEquals(module, CpuBackend.class.getModule());
        // The CPU packages are not exported, but for the kernels' and the threads' qualified exports to aule-models.
        assertTrue(module.getDescriptor().exports().stream()
                .filter(e -> e.source().startsWith("dev.aule.cpu"))
                .allMatch(e -> java.util.Set.of("dev.aule.cpu.vector", "dev.aule.cpu.workers")
                                .contains(e.source())
                        && e.targets().equals(java.util.Set.of("dev.aule.models"))));
        assertTrue(((CpuBackend) Backends.get("cpu")).simd());
        assertFalse(Backends.get("reference").description().isBlank());
    }
}
