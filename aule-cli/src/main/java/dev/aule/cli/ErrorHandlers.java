package dev.aule.cli;

import dev.aule.BackendUnavailableException;
import picocli.CommandLine;
import picocli.CommandLine.IExecutionExceptionHandler;
import picocli.CommandLine.IParameterExceptionHandler;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.ParseResult;
import picocli.CommandLine.UnmatchedArgumentException;

import java.io.PrintWriter;

/** How errors reach the user: one clear line for their mistakes, a stack trace only for ours. */
final class ErrorHandlers {
    static final int BAD_INPUT = 2;
    static final int FAILURE = 1;

    private ErrorHandlers() {}

    /** Bad arguments: the message and a pointer to help instead of the whole usage text. */
    static final class BadArguments implements IParameterExceptionHandler {
        @Override
        public int handleParseException(ParameterException ex, String[] args) {
            CommandLine cl = ex.getCommandLine();
            PrintWriter err = cl.getErr();
            err.println(prefix(cl) + ex.getMessage());
            UnmatchedArgumentException.printSuggestions(ex, err);
            err.println("Try '" + cl.getCommandSpec().qualifiedName() + " --help' for usage.");
            err.flush();
            return BAD_INPUT;
        }
    }

    /**
     * Exceptions from running a command. The library reports a bad shape or an unusable backend
     * with IllegalArgumentException or BackendUnavailableException whose messages already name
     * the argument and the rule, so those print as one line; anything else is a bug worth a trace.
     */
    static final class Failures implements IExecutionExceptionHandler {
        @Override
        public int handleExecutionException(Exception ex, CommandLine cl, ParseResult parseResult) {
            PrintWriter err = cl.getErr();
            if (ex instanceof IllegalArgumentException || ex instanceof BackendUnavailableException) {
                err.println(prefix(cl) + ex.getMessage());
                err.flush();
                return BAD_INPUT;
            }
            err.println(prefix(cl) + "failed: " + ex);
            ex.printStackTrace(err);
            err.flush();
            return FAILURE;
        }
    }

    /**
     * An error of the JVM rather than of the command, as one line: running out of memory (with the heap limit and
     * how to raise it) or a class that failed to load.
     */
    static int fatal(Error error, PrintWriter err) {
        if (error instanceof OutOfMemoryError) {
            long maxMiB = Runtime.getRuntime().maxMemory() >> 20;
            err.println("aule: out of memory (" + error.getMessage() + ", heap limit " + maxMiB
                    + " MiB): use a smaller shape, or raise the limit, e.g. AULE_JAVA_OPTS=-Xmx8g");
        } else {
            Throwable cause = error.getCause() != null ? error.getCause() : error;
            err.println("aule: could not load a part of aule: " + cause);
        }
        err.flush();
        return FAILURE;
    }

    private static String prefix(CommandLine cl) {
        return cl.getCommandSpec().qualifiedName() + ": ";
    }
}
