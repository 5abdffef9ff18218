package dev.aule.cli;

/**
 * How one backend did on one case.
 *
 * @param outError the contract's error of the output; NaN when an element was left unwritten or is NaN
 * @param lseError the same measure on the log-sum-exp
 * @param failure why the call itself failed (an exception), or null when it returned
 */
record CaseResult(ConformanceCase testCase, String backend, double outError, double lseError, String failure) {

    static CaseResult threw(ConformanceCase testCase, String backend, RuntimeException e) {
        return new CaseResult(testCase, backend, Double.NaN, Double.NaN, e.getClass().getSimpleName() + ": " + e.getMessage());
    }

    boolean passed() {
        double tolerance = testCase.tolerance();
        return failure == null && ErrorMeasure.passes(outError, tolerance) && ErrorMeasure.passes(lseError, tolerance);
    }
}
