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

    /** Each cache format serves the same workload; INT8 and FP8 pools hold a quarter of F32's code bytes plus scales. */
    @Test
    void quantizedPoolsServeTheSameWorkloadInAQuarterOfTheMemory() {
        ServeReport f32 = new ServingSimulation(config(12, 400, 8), dev.aule.serving.KvFormat.F32).run();
        for (dev.aule.serving.KvFormat format : new dev.aule.serving.KvFormat[] {
            dev.aule.serving.KvFormat.INT8, dev.aule.serving.KvFormat.FP8_E4M3, dev.aule.serving.KvFormat.FP8_E5M2
        }) {
            ServeReport r = new ServingSimulation(config(12, 400, 8), format).run();
            assertEquals(f32.requests(), r.requests(), format.toString());
            assertEquals(f32.generatedTokens(), r.generatedTokens(), format.toString());
            // Per block: 8 tokens x 2 heads x (16 + 16) code bytes, and 2 heads x 2 scales of 4 bytes.
            assertEquals(400L * (8 * 2 * 32 + 2 * 2 * 4), r.poolBytes(), format.toString());
            assertTrue(r.peakPagedBytes() * 3 < f32.peakPagedBytes(), format + ": " + r);
        }
    }
}
