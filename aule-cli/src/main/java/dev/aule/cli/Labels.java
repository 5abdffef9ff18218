package dev.aule.cli;

import java.io.PrintWriter;

/** Prints "label   value" lines with the values lined up. */
record Labels(PrintWriter out, int width) {
    void print(String label, String value) {
        out.println((label + " ".repeat(Math.max(1, width - label.length()))) + value);
    }
}
