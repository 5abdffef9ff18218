package dev.aule.cpu.workers;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class WorkerTeamTest {
    /** Teams of 4 on any machine, so that helpers contend even on 2 cores; spinning, and parking at once. */
    private static final WorkerTeam SPINNING = WorkerTeam.create(4, 200_000, "test-spinning-");

    private static final WorkerTeam PARKING = WorkerTeam.create(4, 0, "test-parking-");

    @Test
    void everyIndexRunsOnceOnAtMostMaxWorkersThreads() {
        Random random = new Random(17);
        for (int c = 0; c < 300; c++) {
            everyIndexRunsOnce(random.nextInt(301), 1 + random.nextInt(6), random.nextBoolean());
        }
    }

    private static void everyIndexRunsOnce(int items, int maxWorkers, boolean parking) {
        WorkerTeam team = parking ? PARKING : SPINNING;
        AtomicIntegerArray runs = new AtomicIntegerArray(items);
        Set<Thread> threads = ConcurrentHashMap.newKeySet();
        AtomicInteger running = new AtomicInteger();
        team.forEach(items, maxWorkers, i -> {
            running.incrementAndGet();
            threads.add(Thread.currentThread());
            runs.incrementAndGet(i);
            Thread.onSpinWait();
            running.decrementAndGet();
        });
        assertEquals(0, running.get(), "a body still running after the call returned");
        for (int i = 0; i < items; i++) {
            assertEquals(1, runs.get(i), "index " + i);
        }
        assertTrue(threads.size() <= Math.min(maxWorkers, team.threads()), threads.size() + " threads");
    }

    @Test
    void theFirstExceptionPropagatesAndNoBodyRunsAfterTheCall() {
        Random random = new Random(19);
        for (int c = 0; c < 200; c++) {
            exceptionPropagates(1 + random.nextInt(200), random.nextInt(200), random.nextBoolean());
        }
    }

    private static void exceptionPropagates(int items, int failAt, boolean parking) {
        WorkerTeam team = parking ? PARKING : SPINNING;
        int fail = failAt % items;
        AtomicInteger running = new AtomicInteger();
        AtomicIntegerArray runs = new AtomicIntegerArray(items);
        IllegalStateException e = assertThrows(
                IllegalStateException.class,
                () -> team.forEach(items, Integer.MAX_VALUE, i -> {
                    running.incrementAndGet();
                    try {
                        runs.incrementAndGet(i);
                        if (i == fail) {
                            throw new IllegalStateException("index " + i);
                        }
                    } finally {
                        running.decrementAndGet();
                    }
                }));
        assertEquals("index " + fail, e.getMessage());
        assertEquals(0, running.get(), "a body still running after the call threw");
        for (int i = 0; i < items; i++) {
            assertTrue(runs.get(i) <= 1, "index " + i + " ran twice");
        }
        // The team is whole afterwards: a later call runs every index.
        AtomicInteger later = new AtomicInteger();
        team.forEach(64, Integer.MAX_VALUE, i -> later.incrementAndGet());
        assertEquals(64, later.get());
    }

    @Test
    void errorsInHelpersReachTheCallerAndLaterOnesAreSuppressed() {
        CountDownLatch bothFailing = new CountDownLatch(2);
        AtomicReference<Thread> caller = new AtomicReference<>(Thread.currentThread());
        AssertionError e = assertThrows(
                AssertionError.class,
                () -> SPINNING.forEach(2, 2, i -> {
                    bothFailing.countDown();
                    try {
                        bothFailing.await();
                    } catch (InterruptedException interrupted) {
                        Thread.currentThread().interrupt();
                    }
                    throw new AssertionError(Thread.currentThread() == caller.get() ? "caller" : "helper");
                }));
        assertEquals(1, e.getSuppressed().length, "the other thread's error");
        assertTrue(Set.of("caller", "helper").contains(e.getMessage()), e.getMessage());
        AtomicInteger later = new AtomicInteger();
        SPINNING.forEach(100, 4, i -> later.incrementAndGet());
        assertEquals(100, later.get(), "the helpers survive an Error");
    }

    @Test
    void concurrentAndNestedCallsAllFinish() throws InterruptedException {
        for (WorkerTeam team : new WorkerTeam[] {SPINNING, PARKING}) {
            int callers = 12;
            AtomicInteger total = new AtomicInteger();
            AtomicReference<Throwable> failure = new AtomicReference<>();
            List<Thread> threads = new ArrayList<>();
            for (int c = 0; c < callers; c++) {
                Runnable call = () -> {
                    for (int round = 0; round < 50; round++) {
                        // Each outer index makes a call of its own from inside the body, on whatever thread runs it.
                        team.forEach(
                                8,
                                Integer.MAX_VALUE,
                                outer -> team.forEach(5, Integer.MAX_VALUE, inner -> total.incrementAndGet()));
                    }
                };
                Thread thread = (c % 2 == 0 ? Thread.ofPlatform() : Thread.ofVirtual()).unstarted(call);
                thread.setUncaughtExceptionHandler((t, x) -> failure.compareAndSet(null, x));
                threads.add(thread);
                thread.start();
            }
            for (Thread thread : threads) {
                thread.join(60_000);
                assertTrue(!thread.isAlive(), "a caller did not finish");
            }
            assertNull(failure.get());
            assertEquals(callers * 50 * 8 * 5, total.get());
        }
    }

    @Test
    void oneWorkerRunsOnTheCaller() {
        Thread caller = Thread.currentThread();
        List<Integer> order = new ArrayList<>();
        SPINNING.forEach(10, 1, i -> {
            assertSame(caller, Thread.currentThread());
            order.add(i);
        });
        assertEquals(List.of(0, 1, 2, 3, 4, 5, 6, 7, 8, 9), order, "in order, on the caller");
        WorkerTeam alone = WorkerTeam.create(1, 0, "test-alone-");
        AtomicInteger runs = new AtomicInteger();
        alone.forEach(7, Integer.MAX_VALUE, i -> {
            assertSame(caller, Thread.currentThread());
            runs.incrementAndGet();
        });
        assertEquals(7, runs.get());
    }

    @Test
    void badArgumentsAreRefused() {
        IllegalArgumentException items =
                assertThrows(IllegalArgumentException.class, () -> SPINNING.forEach(-1, 2, i -> {}));
        assertEquals("items must be at least 0, got -1", items.getMessage());
        IllegalArgumentException workers =
                assertThrows(IllegalArgumentException.class, () -> SPINNING.forEach(3, 0, i -> {}));
        assertEquals("maxWorkers must be at least 1, got 0", workers.getMessage());
    }

    @Test
    void configuredValues() {
        assertEquals(new WorkerTeam.Choice(6, null), WorkerTeam.chooseThreads(null, 6));
        assertEquals(new WorkerTeam.Choice(3, null), WorkerTeam.chooseThreads(" 3 ", 6));
        WorkerTeam.Choice bad = WorkerTeam.chooseThreads("0", 6);
        assertEquals(6, bad.value());
        assertEquals(
                "aule.cpu.threads must be an integer in [1, 1024], got '0': using the 6 available processors",
                bad.warning());
        assertEquals(6, WorkerTeam.chooseThreads("many", 6).value());
        assertEquals(new WorkerTeam.Choice(WorkerTeam.DEFAULT_SPIN_MICROS, null), WorkerTeam.chooseSpinMicros(""));
        assertEquals(new WorkerTeam.Choice(0, null), WorkerTeam.chooseSpinMicros("0"));
        WorkerTeam.Choice badSpin = WorkerTeam.chooseSpinMicros("100001");
        assertEquals(WorkerTeam.DEFAULT_SPIN_MICROS, badSpin.value());
        assertEquals(
                "aule.cpu.spinMicros must be an integer in [0, 100000], got '100001': spinning 100 µs",
                badSpin.warning());
    }
}
