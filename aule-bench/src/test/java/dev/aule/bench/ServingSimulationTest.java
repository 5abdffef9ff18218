package dev.aule.bench;

import dev.aule.DType;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The serving loop serves every request, preempts when the pool is short, and accounts memory. */
class ServingSimulationTest {

    private static ServeConfig config(int requests, int blocks, int maxBatch) {
        return new ServeConfig(requests, 1.5, 40, 3, 30, 2, 25, maxBatch, blocks, 8, 8, 2, 16, DType.F32, 7);
    }

    @Test
    void servesEveryRequestAndSharesTheSystemPrompt() {
        ServeReport r = new ServingSimulation(config(20, 400, 8)).run();
        assertEquals(20, r.requests());
        assertTrue(r.generatedTokens() >= 20 * 2 && r.generatedTokens() <= 20 * 25, "tokens " + r.generatedTokens());
        assertTrue(r.promptTokens() >= 40 + 20 * 3, "prompt tokens " + r.promptTokens());
        assertEquals(0, r.preemptions());
        assertTrue(r.peakPagedBytes() < r.peakContiguousBytes(), "the shared prompt is stored once: " + r);
        assertTrue(r.stepP50Millis() <= r.stepP99Millis());
        assertEquals(400L * 8 * 2 * 2 * 16 * 4, r.poolBytes());
    }

    @Test
    void aShortPoolPreemptsAndStillServesEveryRequest() {
        ServeReport r = new ServingSimulation(config(20, 24, 8)).run();
        assertEquals(20, r.requests());
        assertTrue(r.preemptions() > 0, "24 blocks of 8 cannot hold 8 running requests: " + r);
        assertTrue(r.peakPagedBytes() <= r.poolBytes());
    }

    @Test
    void streamingSinksServeEveryRequestInFewerBlocks() {
        ServeReport plain = new ServingSimulation(config(12, 400, 4)).run();
        ServeReport streaming =
                new ServingSimulation(config(12, 400, 4), new dev.aule.serving.StreamingPolicy(4, 16)).run();
        assertEquals(12, streaming.requests());
        assertEquals(plain.generatedTokens(), streaming.generatedTokens(), "same workload");
        assertTrue(
                streaming.peakPagedBytes() < plain.peakPagedBytes(),
                "sinks + window hold fewer blocks: " + streaming + " vs " + plain);
    }

    @Test
    void aPoolThatCannotHoldOneRequestIsRejected() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> config(5, 8, 4));
        assertTrue(e.getMessage().startsWith("blocks"), e.getMessage());
    }
}
