package dev.aule.cli;

import org.junit.jupiter.api.Test;

import static dev.aule.cli.TextTable.Column.left;
import static dev.aule.cli.TextTable.Column.right;
import static org.junit.jupiter.api.Assertions.assertEquals;

class TextTableTest {
    @Test
    void padsColumnsToTheWidestCell() {
        TextTable table =
                new TextTable(left("name"), right("n")).add("cpu", "100").add("reference", "0");
        assertEquals("""
                name         n
                ---------  ---
                cpu        100
                reference    0
                """, table.render(""));
    }
}
