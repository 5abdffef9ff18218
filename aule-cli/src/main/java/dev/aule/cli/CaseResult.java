package dev.aule.cli;

import dev.aule.spi.Accuracy;

/**
 * How one backend did on one case.
 *
 * @param outError the contract's error of the output ({@link Accuracy#relativeError}): infinite when an element
 *                 was left unwritten or is NaN; NaN when the call threw
 * @param lseError the same measure on the log-sum-exp
 * @param failure why the call itself failed (an exception), or null when it returned
 */
record CaseResult(ConformanceCase testCase, String backend, double outError, double lseError, String failure) {

    static CaseResult threw(ConformanceCase testCase, String backend, RuntimeException e) {
        return new CaseResult(
                testCase, backend, Double.NaN, Double.NaN, e.getClass().getSimpleName() + ": " + e.getMessage());
    }

    boolean passed() {
        return failure == null
                && Accuracy.within(outError, testCase.tolerance())
                && Accuracy.within(lseError, Accuracy.LSE_TOLERANCE);
    }
}
