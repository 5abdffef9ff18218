package dev.aule.cli;

import org.junit.jupiter.api.Test;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.concurrent.Callable;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Errors of the JVM, not of the command, reach the user as one line and exit code 1, not a stack trace. */
class FatalErrorsTest {

    @Test
    void runningOutOfMemoryIsOneLineWithTheHeapLimit() {
        String err = runThrowing(new OutOfMemoryError("Java heap space"));
        assertEquals(1, err.lines().count(), err);
        assertTrue(err.contains("out of memory (Java heap space, heap limit "), err);
        assertTrue(err.contains("AULE_JAVA_OPTS=-Xmx"), err);
    }

    @Test
    void aClassThatFailsToLoadIsOneLineWithItsCause() {
        String err = runThrowing(new ExceptionInInitializerError(new IllegalStateException("bad table")));
        assertEquals(1, err.lines().count(), err);
        assertTrue(err.contains("could not load a part of aule: java.lang.IllegalStateException: bad table"), err);
        assertFalse(err.contains("\tat "), err);
    }

    /** A command that fails with the JVM error it is given. */
    @CommandLine.Command(name = "failing")
    static final class Failing implements Callable<Integer> {
        private final Error error;

        Failing(Error error) {
            this.error = error;
        }

        @Override
        public Integer call() {
            throw error;
        }
    }

    private static String runThrowing(Error error) {
        StringWriter err = new StringWriter();
        CommandLine cl = new CommandLine(new Failing(error)).setErr(new PrintWriter(err));
        assertEquals(ErrorHandlers.FAILURE, Main.run(cl));
        return err.toString();
    }
}
