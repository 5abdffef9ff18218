package dev.aule;

import dev.aule.cpu.CpuBackend;
import dev.aule.reference.ReferenceBackend;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.Capabilities;
import dev.aule.spi.Capabilities.Feature;
import dev.aule.spi.PackedSequences;
import dev.aule.spi.PagedKv;
import dev.aule.testing.Tensors;
import dev.aule.testing.TestBackend;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.ServiceLoader;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** Discovery, ordering and selection of backends, and the {@link Attention} facade over them. */
class BackendsTest {
    private String savedProperty;

    // Tests here set -Daule.backend; put back whatever was there so other tests see the JVM as it was.
    @BeforeEach
    void saveProperty() {
        savedProperty = System.getProperty(Backends.PROPERTY);
        System.clearProperty(Backends.PROPERTY);
    }

    @AfterEach
    void restoreProperty() {
        if (savedProperty == null) {
            System.clearProperty(Backends.PROPERTY);
        } else {
            System.setProperty(Backends.PROPERTY, savedProperty);
        }
    }

    @Test
    void serviceLoaderFindsTheCpuAndReferenceBackends() {
        List<String> classes = new ArrayList<>();
        for (AttentionBackend backend : ServiceLoader.load(AttentionBackend.class)) {
            classes.add(backend.getClass().getName());
        }
        assertTrue(classes.contains(CpuBackend.class.getName()), "ServiceLoader found " + classes);
        assertTrue(classes.contains(ReferenceBackend.class.getName()), "ServiceLoader found " + classes);
        List<String> names = Backends.all().stream().map(AttentionBackend::name).toList();
        assertTrue(names.contains("cpu") && names.contains("reference"), "Backends.all(): " + names);
        assertEquals(names.size(), names.stream().distinct().count(), "each name once: " + names);
    }

    /** Both always run, and the fast CPU backend outranks the float64 oracle. */
    @Test
    void availableListsCpuBeforeReference() {
        List<String> names =
                Backends.available().stream().map(AttentionBackend::name).toList();
        assertTrue(
                names.indexOf("cpu") >= 0 && names.indexOf("cpu") < names.indexOf("reference"),
                "available(): " + names);
        List<AttentionBackend> available = Backends.available();
        for (int i = 1; i < available.size(); i++) {
            assertTrue(available.get(i - 1).priority() >= available.get(i).priority(), "priority order: " + names);
        }
        for (AttentionBackend backend : available) {
            assertTrue(backend.availability().available(), backend.name());
            assertFalse(backend.description().isBlank(), backend.name());
        }
    }

    @Test
    void getFindsBackendsByNameIgnoringCaseAndSpaces() {
        assertInstanceOf(CpuBackend.class, Backends.get("cpu"));
        assertInstanceOf(ReferenceBackend.class, Backends.get("reference"));
        assertSame(Backends.get("cpu"), Backends.get(" CPU "));
    }

    @Test
    void getOfAnUnknownNameListsTheKnownBackends() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Backends.get("nope"));
        String message = e.getMessage();
        assertTrue(message.startsWith("name:"), message);
        assertTrue(message.contains("'nope'"), message);
        assertTrue(message.contains("cpu") && message.contains("reference"), message);
        assertThrows(IllegalArgumentException.class, () -> Backends.get(null));
        assertThrows(IllegalArgumentException.class, () -> Backends.get(""));
    }

    @Test
    void selectedHonoursTheSystemProperty() {
        assumeTrue(System.getenv(Backends.ENVIRONMENT) == null, "AULE_BACKEND is set in this environment");
        assertEquals("cpu", Backends.selected().name(), "without a property the best available backend");
        assertTrue(Backends.selectionReason().startsWith("auto"), Backends.selectionReason());
        System.setProperty(Backends.PROPERTY, "reference");
        assertEquals("reference", Backends.selected().name());
        assertTrue(Backends.selectionReason().contains(Backends.PROPERTY + "=reference"), Backends.selectionReason());
        System.setProperty(Backends.PROPERTY, "cpu");
        assertEquals("cpu", Backends.selected().name());
        System.setProperty(Backends.PROPERTY, "   ");
        assertEquals("cpu", Backends.selected().name(), "a blank property counts as unset");
        System.setProperty(Backends.PROPERTY, "nope");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, Backends::selected);
        assertTrue(e.getMessage().contains("nope"), e.getMessage());
    }

    /** forward, forwardWithLse and forwardInto give bit for bit what the selected backend gives. */
    @Test
    void theFacadeMatchesTheSelectedBackend() {
        for (String name : new String[] {"cpu", "reference"}) {
            System.setProperty(Backends.PROPERTY, name);
            AttentionBackend backend = Backends.get(name);
            SplittableRandom rnd = new SplittableRandom(4);
            Tensor q = Tensors.random(rnd, DType.F32, 2, 4, 33, 16);
            Tensor k = Tensors.random(rnd, DType.F32, 2, 2, 50, 16);
            Tensor v = Tensors.random(rnd, DType.F32, 2, 2, 50, 24);
            AttentionOptions options =
                    AttentionOptions.builder().causal(true).softcap(20f).build();
            Tensor out = Tensor.allocate(DType.F32, 2, 4, 33, 24);
            Tensor lse = Tensor.allocate(DType.F32, 2, 4, 33, 1);
            backend.forward(q, k, v, out, lse, options);

            Tensor viaForward = Attention.forward(q, k, v, options);
            assertArrayEquals(out.shape(), viaForward.shape(), name);
            assertArrayEquals(out.toFloatArray(), viaForward.toFloatArray(), name + ": forward");

            AttentionResult withLse = Attention.forwardWithLse(q, k, v, options);
            assertArrayEquals(out.toFloatArray(), withLse.out().toFloatArray(), name + ": forwardWithLse out");
            assertArrayEquals(lse.toFloatArray(), withLse.lse().toFloatArray(), name + ": forwardWithLse lse");
            assertArrayEquals(new long[] {2, 4, 33, 1}, withLse.lse().shape());
            assertEquals(DType.F32, withLse.lse().dtype());

            Tensor into = Tensor.allocate(DType.F32, 2, 4, 33, 24);
            Tensor intoLse = Tensor.allocate(DType.F32, 2, 4, 33, 1);
            into.fill(Float.NaN);
            intoLse.fill(Float.NaN);
            Attention.forwardInto(q, k, v, into, intoLse, options);
            assertArrayEquals(out.toFloatArray(), into.toFloatArray(), name + ": forwardInto out");
            assertArrayEquals(lse.toFloatArray(), intoLse.toFloatArray(), name + ": forwardInto lse");
            Attention.forwardInto(q, k, v, into, null, options); // lse is optional
            assertArrayEquals(out.toFloatArray(), into.toFloatArray(), name + ": forwardInto without lse");
        }
    }

    /** The facade allocates an output in q's dtype: F16 in, F16 out; the same values the backend writes to F16. */
    @Test
    void theFacadeOutputHasTheDtypeOfQ() {
        SplittableRandom rnd = new SplittableRandom(8);
        for (DType dtype : DType.values()) {
            Tensor q = Tensors.random(rnd, dtype, 1, 2, 9, 8);
            Tensor k = Tensors.random(rnd, DType.F32, 1, 1, 11, 8);
            Tensor v = Tensors.random(rnd, DType.BF16, 1, 1, 11, 8);
            Tensor out = Attention.forward(q, k, v, AttentionOptions.defaults());
            assertEquals(dtype, out.dtype());
            assertTrue(out.isContiguous());
            Tensor direct = Tensor.allocate(dtype, 1, 2, 9, 8);
            Backends.selected().forward(q, k, v, direct, null, AttentionOptions.defaults());
            assertArrayEquals(direct.toFloatArray(), out.toFloatArray(), dtype.toString());
        }
    }

    /** A backend that does not implement backward inherits the SPI default, which says so. */
    @Test
    void aBackendWithoutBackwardThrowsUnsupportedOperation() {
        AttentionBackend forwardOnly = stub("forward-only", 0, Capabilities.of(64, EnumSet.of(DType.F32)));
        UnsupportedOperationException e =
                assertThrows(UnsupportedOperationException.class, () -> forwardOnly.backward(null, null, null));
        assertNotNull(e.getMessage());
        assertTrue(e.getMessage().contains("forward-only"), e.getMessage());
    }

    /**
     * A call goes to the first backend, in priority order, whose capabilities cover it, but never to one of
     * priority 0 (an oracle) unless it is the first; when none can, to the first, whose own validation then
     * explains the refusal.
     */
    @Test
    void aCallGoesToTheBestBackendThatCanRunIt() {
        AttentionBackend gpu = stub("gpu", 200, Capabilities.of(256, EnumSet.allOf(DType.class), Feature.BACKWARD));
        AttentionBackend cpu = stub(
                "fast-cpu",
                100,
                Capabilities.of(512, EnumSet.allOf(DType.class), Feature.BACKWARD, Feature.MASKS, Feature.SERVING));
        AttentionBackend small = stub("small", 10, Capabilities.of(1024, EnumSet.of(DType.F32)));
        AttentionBackend oracle = stub(
                "oracle",
                0,
                Capabilities.of(
                        Integer.MAX_VALUE,
                        EnumSet.allOf(DType.class),
                        Feature.BACKWARD,
                        Feature.MASKS,
                        Feature.SERVING));
        List<AttentionBackend> byPriority = List.of(gpu, cpu, small, oracle);
        assertSame(gpu, Backends.firstCapable(byPriority, caps -> true));
        assertSame(cpu, Backends.firstCapable(byPriority, Capabilities::serving));
        assertSame(cpu, Backends.firstCapable(byPriority, Capabilities::masks));
        assertSame(cpu, Backends.firstCapable(byPriority, caps -> caps.maxHeadDim() >= 512));
        assertSame(small, Backends.firstCapable(byPriority, caps -> caps.maxHeadDim() >= 1024));
        assertSame(
                gpu,
                Backends.firstCapable(byPriority, caps -> caps.maxHeadDim() >= 2048),
                "only the oracle can: not chosen, the first explains");
        assertSame(
                oracle,
                Backends.firstCapable(List.of(oracle, gpu), caps -> caps.maxHeadDim() >= 2048),
                "an oracle that is first is chosen like any other");
    }

    /**
     * A backend with masks in the forward only (MASKS_FORWARD) gets masked forwards, and auto-selection passes it by
     * for a ScoreMod and for a masked backward, which it refuses.
     */
    @Test
    void forwardOnlyMasksCoverMaskedForwardsWithoutScoreMods() {
        AttentionBackend gpu = stub(
                "gpu", 200, Capabilities.of(256, EnumSet.allOf(DType.class), Feature.BACKWARD, Feature.MASKS_FORWARD));
        AttentionBackend cpu = stub(
                "fast-cpu", 100, Capabilities.of(512, EnumSet.allOf(DType.class), Feature.BACKWARD, Feature.MASKS));
        List<AttentionBackend> byPriority = List.of(gpu, cpu);
        AttentionOptions plain = AttentionOptions.defaults();
        AttentionOptions masked = AttentionOptions.builder()
                .maskMod(dev.aule.mask.MaskMod.causal())
                .build();
        AttentionOptions scored =
                masked.toBuilder().scoreMod(dev.aule.mask.ScoreMod.softcap(2f)).build();
        assertSame(gpu, Backends.firstCapable(byPriority, caps -> caps.runsMasks(plain, true)));
        assertSame(gpu, Backends.firstCapable(byPriority, caps -> caps.runsMasks(masked, false)));
        assertSame(cpu, Backends.firstCapable(byPriority, caps -> caps.runsMasks(masked, true)));
        assertSame(cpu, Backends.firstCapable(byPriority, caps -> caps.runsMasks(scored, false)));
        assertTrue(gpu.capabilities().forwardMasks() && !gpu.capabilities().masks());
        assertTrue(cpu.capabilities().forwardMasks(), "MASKS covers the forward too");
        assertFalse(Capabilities.of(64, EnumSet.of(DType.F32)).runsMasks(masked, false));
    }

    /**
     * MASKS_BACKWARD beside MASKS_FORWARD: masked backward passes are taken too, ScoreMods still go to a backend
     * with MASKS, forward and backward; MASKS_BACKWARD alone adds nothing.
     */
    @Test
    void backwardMasksCoverMaskedBackwardsWithoutScoreMods() {
        Capabilities both = Capabilities.of(
                256, EnumSet.allOf(DType.class), Feature.BACKWARD, Feature.MASKS_FORWARD, Feature.MASKS_BACKWARD);
        AttentionOptions masked = AttentionOptions.builder()
                .maskMod(dev.aule.mask.MaskMod.causal())
                .build();
        AttentionOptions scored =
                masked.toBuilder().scoreMod(dev.aule.mask.ScoreMod.softcap(2f)).build();
        assertTrue(both.runsMasks(masked, true) && both.runsMasks(masked, false));
        assertFalse(both.runsMasks(scored, true) || both.runsMasks(scored, false));
        assertTrue(both.backwardMasks() && !both.masks());
        Capabilities alone = Capabilities.of(256, EnumSet.allOf(DType.class), Feature.BACKWARD, Feature.MASKS_BACKWARD);
        assertFalse(alone.backwardMasks() || alone.runsMasks(masked, true) || alone.runsMasks(masked, false));
        assertTrue(Capabilities.of(64, EnumSet.of(DType.F32), Feature.MASKS).backwardMasks(), "MASKS covers it");
    }

    @Test
    void theSpiDefaultsHaveNoServingAndTheBuiltInBackendsHaveIt() {
        assertFalse(Capabilities.of(64, EnumSet.of(DType.F32), Feature.BACKWARD).serving());
        assertFalse(Capabilities.of(64, EnumSet.of(DType.F32), Feature.BACKWARD, Feature.MASKS)
                .serving());
        assertFalse(Capabilities.of(64, EnumSet.of(DType.F32), Feature.BACKWARD).masks());
        for (String name : new String[] {"cpu", "reference"}) {
            Capabilities caps = Backends.get(name).capabilities();
            assertTrue(caps.serving() && caps.masks() && caps.backward(), name + ": " + caps);
        }
        AttentionBackend forwardOnly = stub("forward-only", 1, Capabilities.of(64, EnumSet.of(DType.F32)));
        UnsupportedOperationException e = assertThrows(
                UnsupportedOperationException.class,
                () -> forwardOnly.forwardPaged(null, new PagedKv(null, null, null, null), null, null, null));
        assertTrue(e.getMessage().contains("forward-only") && e.getMessage().contains("serving"), e.getMessage());
        assertThrows(
                UnsupportedOperationException.class,
                () -> forwardOnly.forwardCached(null, null, null, (int[]) null, null, null, null));
        assertThrows(
                UnsupportedOperationException.class,
                () -> forwardOnly.forwardVarlen(null, null, null, new PackedSequences(null, null), null, null, null));
    }

    /** A forced backend is used as is, even for a call it cannot run: the user asked for it. */
    @Test
    void aForcedBackendIsNotReplaced() {
        assumeTrue(System.getenv(Backends.ENVIRONMENT) == null, "AULE_BACKEND is set in this environment");
        assertEquals("cpu", Backends.selected(Capabilities::serving).name());
        assertEquals(
                "cpu",
                Backends.selected(caps -> caps.maxHeadDim() > 512).name(),
                "unforced: the oracle is no fallback, the cpu backend rejects the call itself");
        System.setProperty(Backends.PROPERTY, "reference");
        assertEquals("reference", Backends.selected(caps -> false).name());
        assertThrows(NullPointerException.class, () -> Backends.selected(null));
    }

    private static AttentionBackend stub(String name, int priority, Capabilities capabilities) {
        return new TestBackend() {
            @Override
            public String name() {
                return name;
            }

            @Override
            public int priority() {
                return priority;
            }

            @Override
            public Capabilities capabilities() {
                return capabilities;
            }

            @Override
            public void forward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, AttentionOptions options) {}
        };
    }
}
