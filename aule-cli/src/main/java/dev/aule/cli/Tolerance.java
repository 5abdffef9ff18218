package dev.aule.cli;

import dev.aule.DType;

/** The contract's tolerances: F32 computes to 1e-5; 16-bit outputs are rounded on store, so 1e-2. */
final class Tolerance {
    private Tolerance() {
    }

    static double of(DType dtype) {
        return dtype == DType.F32 ? 1e-5 : 1e-2;
    }
}
