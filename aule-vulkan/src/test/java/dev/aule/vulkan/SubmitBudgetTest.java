package dev.aule.vulkan;

import dev.aule.spi.AttentionShape;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** How many query tiles one forward submission runs by default: bounded on a GPU, all on a CPU device. */
class SubmitBudgetTest {
    private static DeviceInfo device(DeviceInfo.Kind kind) {
        return new DeviceInfo(
                0,
                kind.label,
                kind,
                "1.1.0",
                32,
                48 * 1024,
                1L << 40,
                1024,
                1024,
                new int[] {1 << 30, 65535, 65535},
                false,
                false,
                false,
                false);
    }

    private static AttentionShape shape(int heads, int seq) {
        return new AttentionShape(1, heads, heads, seq, seq, 64, 64);
    }

    @Test
    void aGpuSubmitsAtMostItsScoreBudgetAtOnce() {
        DeviceInfo gpu = device(DeviceInfo.Kind.DISCRETE_GPU);
        // 64 rows x 2^17 keys x 32 heads = 2^28 scores a tile: 16 tiles make 2^32.
        assertEquals(16, AttentionKernels.tilesPerSubmit(gpu, shape(32, 1 << 17), 64));
        assertEquals(1, AttentionKernels.tilesPerSubmit(gpu, shape(32, 1 << 24), 64), "at least one tile");
        assertEquals(1 << 16, AttentionKernels.tilesPerSubmit(gpu, shape(1, 1024), 64), "a short call is whole");
    }

    @Test
    void aCpuDeviceHasNoWatchdogAndRunsTheGridWhole() {
        assertEquals(
                Integer.MAX_VALUE,
                AttentionKernels.tilesPerSubmit(device(DeviceInfo.Kind.CPU), shape(32, 1 << 17), 64));
    }
}
