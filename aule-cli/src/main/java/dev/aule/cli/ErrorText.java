package dev.aule.cli;

import java.util.Locale;

/** How the commands print an error or a tolerance of {@link dev.aule.spi.Accuracy}: 3 digits, or "inf"/"NaN". */
final class ErrorText {
    private ErrorText() {}

    static String format(double error) {
        if (Double.isNaN(error)) {
            return "NaN";
        }
        if (Double.isInfinite(error)) {
            return "inf";
        }
        return String.format(Locale.ROOT, "%.2e", error);
    }
}
