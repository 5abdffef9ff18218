package dev.aule.cli;

import java.util.ArrayList;
import java.util.List;

/**
 * A plain-text table with padded columns. Widths grow to fit every cell passed to {@link #fit};
 * rows can then be printed one at a time, which lets a slow command show each row as it finishes.
 */
final class TextTable {
    enum Align {
        LEFT,
        RIGHT
    }

    /** @param header column title; @param align how cells sit in the column */
    record Column(String header, Align align) {
        static Column left(String header) {
            return new Column(header, Align.LEFT);
        }

        static Column right(String header) {
            return new Column(header, Align.RIGHT);
        }
    }

    private static final String GAP = "  ";

    private final List<Column> columns;
    private final int[] widths;
    private final List<String[]> rows = new ArrayList<>();

    TextTable(Column... columns) {
        this.columns = List.of(columns);
        this.widths = new int[columns.length];
        for (int c = 0; c < columns.length; c++) {
            widths[c] = columns[c].header().length();
        }
    }

    /** Widens columns to hold these cells without adding a row. */
    TextTable fit(String... cells) {
        checkCount(cells);
        for (int c = 0; c < cells.length; c++) {
            widths[c] = Math.max(widths[c], cells[c].length());
        }
        return this;
    }

    /** Adds a row, widening columns to fit, for {@link #render()}. */
    TextTable add(String... cells) {
        fit(cells);
        rows.add(cells.clone());
        return this;
    }

    String header() {
        return line(columns.stream().map(Column::header).toArray(String[]::new));
    }

    String rule() {
        StringBuilder s = new StringBuilder();
        for (int c = 0; c < widths.length; c++) {
            s.append(c == 0 ? "" : GAP).append("-".repeat(widths[c]));
        }
        return s.toString();
    }

    /** One row, padded to the current widths; a cell wider than its column pushes the rest right. */
    String line(String... cells) {
        checkCount(cells);
        StringBuilder s = new StringBuilder();
        for (int c = 0; c < cells.length; c++) {
            String pad = " ".repeat(Math.max(0, widths[c] - cells[c].length()));
            s.append(c == 0 ? "" : GAP);
            s.append(columns.get(c).align() == Align.LEFT ? cells[c] + pad : pad + cells[c]);
        }
        return s.toString().stripTrailing();
    }

    /** Header, rule and every added row, each line prefixed with {@code indent}. */
    String render(String indent) {
        StringBuilder s = new StringBuilder();
        s.append(indent).append(header()).append('\n');
        s.append(indent).append(rule()).append('\n');
        for (String[] row : rows) {
            s.append(indent).append(line(row)).append('\n');
        }
        return s.toString();
    }

    private void checkCount(String[] cells) {
        if (cells.length != columns.size()) {
            throw new IllegalArgumentException("cells: " + cells.length + " given for " + columns.size() + " columns");
        }
    }
}
