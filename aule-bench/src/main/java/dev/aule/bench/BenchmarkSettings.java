package dev.aule.bench;

import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

import java.util.concurrent.TimeUnit;

/**
 * The JMH settings every benchmark here shares: one benchmark-wide state, average time in ms, 3
 * warm-up and 5 measured iterations of 2 s, one fork. A benchmark that needs other settings
 * annotates its own class, which replaces the inherited annotation of that kind.
 *
 * <p>No {@code @Fork} here names JVM flags for the Vector API: JMH 1.37 gives a fork the host JVM's
 * own arguments when neither the options nor the annotation set {@code jvmArgs}, so the
 * {@code --add-modules jdk.incubator.vector} of the command that starts JMH reaches every fork, and
 * {@link BenchReport} adds {@link BenchReport#FORK_FLAGS} in front in case its JVM lacked them. A
 * benchmark's own {@code jvmArgsAppend} (a larger heap) is added after both.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(1)
public abstract class BenchmarkSettings {}
