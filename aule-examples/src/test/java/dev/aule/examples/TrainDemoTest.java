package dev.aule.examples;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertTrue;

class TrainDemoTest {
    /** A few dozen Adam steps already take the copy task's loss well below its start (ln 16 = 2.77 at chance). */
    @Test
    void lossDecreases() {
        TrainDemo demo = new TrainDemo(TrainDemo.Config.defaults());
        int steps = 40;
        double first = 0;
        double last = 0;
        for (int s = 0; s < steps; s++) {
            double loss = demo.trainStep();
            assertTrue(Double.isFinite(loss), "step " + s + ": loss " + loss);
            if (s < 5) {
                first += loss / 5;
            } else if (s >= steps - 5) {
                last += loss / 5;
            }
        }
        assertTrue(last < 0.85 * first, "mean loss of the last 5 steps " + last + " vs the first 5 " + first);
    }
}
