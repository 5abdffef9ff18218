package dev.aule.models;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.lang.reflect.Field;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class LineAlignmentTest {
    /** Prints what LineAlignment detects, then what the VM's own layout is: the two must agree. */
    public static void main(String[] args) throws ReflectiveOperationException {
        System.out.println(LineAlignment.baseBytes() + " " + unsafeBaseOffset());
    }

    /** The VM's own answer, from the one place that gives it; only the test reads it. */
    private static int unsafeBaseOffset() throws ReflectiveOperationException {
        Class<?> unsafe = Class.forName("sun.misc.Unsafe");
        Field field = unsafe.getDeclaredField("theUnsafe");
        field.setAccessible(true);
        return (int) unsafe.getMethod("arrayBaseOffset", Class.class).invoke(field.get(null), float[].class);
    }

    @Test
    void detectedBaseIsTheVmsOwn() throws ReflectiveOperationException {
        assertEquals(unsafeBaseOffset(), LineAlignment.baseBytes());
    }

    @Test
    void detectedBaseUnderEveryHeaderLayout() throws IOException, InterruptedException {
        // Each layout of HotSpot's headers in a JVM of its own: default, compact headers, no compressed class pointers.
        for (String flag : new String[] {
            "-XX:+UseCompressedClassPointers", "-XX:+UseCompactObjectHeaders", "-XX:-UseCompressedClassPointers"
        }) {
            List<String> command = new ArrayList<>();
            command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
            command.add("-Xshare:off");
            command.add(flag);
            command.add("--sun-misc-unsafe-memory-access=allow");
            command.add("-cp");
            command.add(System.getProperty("java.class.path"));
            command.add(LineAlignmentTest.class.getName());
            Process process =
                    new ProcessBuilder(command).redirectErrorStream(true).start();
            String out = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
            assertTrue(process.waitFor(60, TimeUnit.SECONDS), flag);
            assertEquals(0, process.exitValue(), flag + ": " + out);
            String[] lines = out.lines().toArray(String[]::new);
            String[] both = lines[lines.length - 1].split(" ");
            assertEquals(both[1], both[0], flag + ": detected then actual");
        }
    }

    @Test
    void lineStartIsTheNextLineBoundary() {
        int baseFloats = LineAlignment.baseBytes() / Float.BYTES;
        for (int index = 0; index < 200; index++) {
            int start = LineAlignment.lineStart(index);
            assertTrue(
                    start >= index && start < index + LineAlignment.LINE_FLOATS, "lineStart(" + index + ") = " + start);
            assertEquals(0, (baseFloats + start) % LineAlignment.LINE_FLOATS, "lineStart(" + index + ")");
            assertEquals(start, LineAlignment.lineStart(start), "a line start is its own");
        }
    }
}
