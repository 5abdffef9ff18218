package dev.aule.spi;

import dev.aule.Tensor;

import java.util.Objects;

/**
 * A tensor and the argument name that validation messages call it by ({@code "q"},
 * {@code "options.bias"}, {@code "partials[2].out"}).
 *
 * @param name the argument name
 * @param tensor the tensor, or null
 */
public record NamedTensor(String name, Tensor tensor) {
    /** Checks that there is a name. */
    public NamedTensor {
        Objects.requireNonNull(name, "name");
    }
}
