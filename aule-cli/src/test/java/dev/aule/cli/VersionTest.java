package dev.aule.cli;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

/** {@code aule --version} prints the version of the build it came from, not a string kept by hand. */
class VersionTest {
    @Test
    void versionIsTheProjectVersion() {
        // Set by aule-cli/pom.xml's surefire configuration from ${project.version}.
        String projectVersion = System.getProperty("aule.project.version");
        assertNotNull(projectVersion, "surefire should set aule.project.version");
        CliRun run = CliRun.of("--version");
        assertEquals(0, run.exitCode(), run.err());
        assertEquals("aule " + projectVersion, run.out().trim());
    }
}
