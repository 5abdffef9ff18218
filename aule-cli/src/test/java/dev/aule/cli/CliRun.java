package dev.aule.cli;

import java.io.PrintWriter;
import java.io.StringWriter;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** One in-process run of the {@code aule} command with its output captured. */
record CliRun(int exitCode, String out, String err) {
    static CliRun of(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = Main.run(Main.commandLine().setOut(new PrintWriter(out)).setErr(new PrintWriter(err)), args);
        return new CliRun(code, out.toString(), err.toString());
    }

    /** {@return this run, once checked to have exited 0; a failure shows all it printed} */
    CliRun succeeded() {
        assertEquals(0, exitCode, out + err);
        return this;
    }

    /** Fails unless the standard output holds each of {@code texts}; a failure shows that output. */
    void assertPrinted(String... texts) {
        for (String text : texts) {
            assertTrue(out.contains(text), out);
        }
    }
}
