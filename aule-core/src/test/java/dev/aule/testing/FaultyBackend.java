package dev.aule.testing;

import dev.aule.AttentionOptions;
import dev.aule.Tensor;
import dev.aule.spi.AttentionBackend;
import dev.aule.spi.Capabilities;

import java.util.function.Consumer;

/**
 * A deliberately broken backend, for tests that a checker catches what it claims to: each forward
 * runs {@code inner}, then hands the call's tensors to {@code fault}, which tampers with them.
 *
 * @param name what the checker reports the backend as
 * @param inner the backend that computes the right answer first
 * @param fault the damage done after each forward
 */
public record FaultyBackend(String name, AttentionBackend inner, Consumer<Call> fault) implements TestBackend {

    /** The tensors of one forward call, for a fault to tamper with. */
    public record Call(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, AttentionOptions options) {}

    @Override
    public String description() {
        return inner.name() + " with one fault";
    }

    @Override
    public Capabilities capabilities() {
        return inner.capabilities();
    }

    @Override
    public void forward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, AttentionOptions options) {
        inner.forward(q, k, v, out, lse, options);
        fault.accept(new Call(q, k, v, out, lse, options));
    }
}
