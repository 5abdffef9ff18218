package dev.aule.spi;

import dev.aule.Tensor;
import java.util.Objects;

/**
 * A tensor and the argument name that validation messages call it by ({@code "q"},
 * {@code "options.bias"}, {@code "partials[2].out"}).
 */
public record NamedTensor(String name, Tensor tensor) {
    public NamedTensor {
        Objects.requireNonNull(name, "name");
    }
}
