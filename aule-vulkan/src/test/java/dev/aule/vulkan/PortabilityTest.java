package dev.aule.vulkan;

import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Which portability extensions and flags the instance and the device enable, from the names offered. */
class PortabilityTest {
    @Test
    void aLoaderWithPortabilityEnumerationListsPortabilityDrivers() {
        Set<String> offered = Set.of("VK_KHR_surface", Portability.ENUMERATION);
        assertEquals(List.of(Portability.ENUMERATION), Portability.instanceExtensions(offered));
        assertEquals(Portability.ENUMERATE_PORTABILITY_BIT, Portability.instanceFlags(offered));
    }

    @Test
    void anOlderLoaderGetsNeitherTheExtensionNorTheFlag() {
        Set<String> offered = Set.of("VK_KHR_surface");
        assertEquals(List.of(), Portability.instanceExtensions(offered));
        assertEquals(0, Portability.instanceFlags(offered));
    }

    @Test
    void aPortabilityDeviceHasItsSubsetEnabled() {
        assertEquals(List.of(Portability.SUBSET), Portability.deviceExtensions(Set.of(Portability.SUBSET)));
        assertEquals(List.of(), Portability.deviceExtensions(Set.of("VK_KHR_16bit_storage")));
    }
}
