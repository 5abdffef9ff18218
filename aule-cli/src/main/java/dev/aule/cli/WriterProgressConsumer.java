package dev.aule.cli;

import me.tongfei.progressbar.ProgressBarConsumer;

import java.io.PrintWriter;

/** Draws the progress bar on one line of a writer (the command's stderr), redrawn with a carriage return. */
final class WriterProgressConsumer implements ProgressBarConsumer {
    private static final int WIDTH = 100;

    private final PrintWriter writer;

    WriterProgressConsumer(PrintWriter writer) {
        this.writer = writer;
    }

    @Override
    public int getMaxRenderedLength() {
        return WIDTH;
    }

    @Override
    public void accept(String rendered) {
        writer.print('\r');
        writer.print(rendered);
        writer.flush();
    }

    @Override
    public void close() {
        writer.println();
        writer.flush();
    }
}
