package dev.aule.testing;

import dev.aule.spi.AttentionBackend;
import dev.aule.spi.Availability;

/** A backend made up by a test: what such backends answer unless they say otherwise. */
public interface TestBackend extends AttentionBackend {
    /** {@return "test stub"} */
    @Override
    default String description() {
        return "test stub";
    }

    /** {@return 0: never chosen over a real backend by priority} */
    @Override
    default int priority() {
        return 0;
    }

    /** {@return available, the reason being "test"} */
    @Override
    default Availability availability() {
        return Availability.available("test");
    }
}
